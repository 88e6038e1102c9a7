//! Keeps the predictor's memory bounded after large requests. Two calls into glibc's
//! allocator: [`bound_allocator_retention`] once at start, so that large blocks go back to the
//! system as soon as they are freed, and [`give_back_free_memory`] once a large batch is
//! answered and logged, so that the small blocks it freed do too.
//!
//! What kept the memory. A 10,000-row `POST /predict/batch` holds ~20 MiB for a moment: the
//! 2 MB body, the parsed listings, the valid ones, the answer's JSON, the inference log's
//! entries, most of it in blocks of megabytes. glibc serves a block above its mmap threshold
//! (128 KiB at start) from a mapping of its own and unmaps it when it is freed, but on that
//! free it also raises the threshold to the freed block's size (up to 32 MiB), and its trim
//! threshold to twice that: it guesses that a program freeing a large block will soon
//! allocate another, and should reuse heap memory for it. So after the first batch, every
//! later batch's buffers came from the heaps of the allocator's arenas (one per thread that
//! allocated, up to eight per core), where freed memory stays resident: a heap shrinks only
//! from its top, above its highest block still in use, and only by more than the (now raised)
//! trim threshold. Nothing was leaked or pooled: it was free memory the allocator kept, for
//! good (the figures before and after, and the command: `bench/README.md`, *Memory after
//! batch requests*).
//!
//! The two calls, each measured alone:
//!
//! - `mallopt(M_MMAP_THRESHOLD, 128 KiB)` fixes the threshold at its initial value, which also
//!   turns the dynamic adjustment off: the large blocks are mapped and unmapped every time.
//!   This is most of the gain. It costs one `mmap`/`munmap` and the page faults of fresh
//!   memory per block of 128 KiB or more; a single-listing request allocates none (its body
//!   is at most 64 KiB), so its path is unchanged.
//! - `malloc_trim(0)` hands back every whole free page in every arena, including those below
//!   blocks still in use (glibc `madvise`s them away). What stays after a batch with the
//!   threshold fixed is its many small blocks (each listing's strings, the answer's ids)
//!   spread through the heaps, and this returns those pages too. The inference log's writer
//!   calls it after writing a buffer of at least [`LARGE_BATCH_ROWS`] entries, that is once a
//!   large batch is answered and its entries, the last of its memory, are freed. It walks the
//!   arenas (a fraction of a millisecond to a few) and single-listing traffic does not reach
//!   it: its buffers stay far shorter.
//!
//! Fewer arenas (`M_ARENA_MAX` 1, tried through `GLIBC_TUNABLES` on the debug build) kept as
//! much memory and would make the worker threads contend for one lock, so the arena count is
//! left alone. The body limit (16 MiB for a
//! batch) and `PREDICT_MAX_BATCH` bound the peak, ~20 MiB per 10,000-row request in flight;
//! parsing in chunks would lower that peak, not what stays after it.
//!
//! Only on glibc (`target_env = "gnu"`); elsewhere (musl, macOS) both do nothing.

/// Blocks this size or larger get their own mapping: glibc's initial threshold, kept.
pub const MMAP_THRESHOLD: usize = 128 * 1024;

/// Inference log entries written at once that mean a large batch has just been answered, after
/// which [`give_back_free_memory`] runs.
pub const LARGE_BATCH_ROWS: usize = 5_000;

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

/// Gives the free memory the allocator holds back to the system (`malloc_trim(0)`, see the
/// module docs).
pub fn give_back_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::time::Instant::now();
        // SAFETY: malloc_trim only releases pages that hold no allocated block, under each
        // arena's lock; no memory in use moves or changes.
        let released = unsafe { libc::malloc_trim(0) } == 1;
        tracing::debug!(
            released,
            micros = started.elapsed().as_micros() as u64,
            "gave free memory back to the system after a large batch"
        );
    }
}
