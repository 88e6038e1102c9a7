//! Keeps the predictor's memory bounded after large requests: [`bound_allocator_retention`],
//! called once at start, tells glibc's allocator to serve every block of [`MMAP_THRESHOLD`] or
//! more from its own mapping, so that freeing it gives it back to the system at once.
//!
//! Why it is needed. A 10,000-row `POST /predict/batch` holds a few blocks of megabytes for a
//! moment: the 2 MB body, the parsed listings, the valid ones, the answer's JSON, the inference
//! log's buffer. glibc serves a block above its mmap threshold (128 KiB at start) from a
//! mapping of its own and unmaps it when freed, but on that free it also raises the threshold
//! to the freed block's size (up to 32 MiB) and its trim threshold to twice that: it guesses
//! that a program freeing a large block will allocate another and should reuse heap memory
//! for it. After the first batch, every later one's buffers come from the heaps of the
//! allocator's arenas (one per thread that allocated, up to eight per core), where freed memory
//! stays resident: a heap shrinks only from its top, above the highest block still in use, and
//! only by more than the (now raised) trim threshold. The predictor measured 18 MiB idle and
//! 126 MiB after a series of 10,000-row batches, and stayed there; with the threshold fixed it
//! returns within a few MiB of idle (figures and the command: `bench/README.md`, *Memory
//! after batch requests*).
//!
//! Setting the threshold by `mallopt` turns the dynamic adjustment off, which is the point.
//! The cost is one `mmap`/`munmap` (and the page faults of touching fresh memory) per block of
//! 128 KiB or more: a single-listing request allocates none (its body is at most 64 KiB), so
//! its path is unchanged; a large batch pays well under a millisecond for a few megabytes.
//! The arena count is left alone (fewer arenas kept no less memory here and would make the
//! worker threads contend), and no `malloc_trim` runs after requests: with the threshold
//! fixed, what stays is small blocks spread through the heaps, a few MiB.
//!
//! Only on glibc (`target_env = "gnu"`); elsewhere (musl, macOS) this does nothing.

/// Blocks this size or larger get their own mapping: glibc's initial threshold, kept.
pub const MMAP_THRESHOLD: usize = 128 * 1024;

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`] (see the module docs); call once at
/// start. Returns whether the allocator took the setting (false off glibc).
pub fn bound_allocator_retention() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets the allocator's parameters, under its own lock; it takes
        // plain integers and touches no memory of ours.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
