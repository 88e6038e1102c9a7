//! What Linux's `/proc` says of a process: its CPU seconds and its `status` memory lines. The
//! predictor's `/metrics`, the harness's run summary and the benchmarks read them through
//! here. Elsewhere than Linux every answer is `None`.

/// Which process: `"self"` or a process id.
pub type Pid<'a> = &'a str;

/// CPU seconds the process has used so far, user and system, all threads: fields 14 and 15 of
/// `/proc/<pid>/stat`, in clock ticks (`USER_HZ`, 100 on x86-64 and arm64).
pub fn cpu_seconds(pid: Pid<'_>) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / 100.0)
}

/// A `kB` line of `/proc/<pid>/status` (e.g. `VmRSS`, the resident memory now, or `VmHWM`, the
/// most it has been), in bytes.
pub fn status_bytes(pid: Pid<'_>, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| {
        line.strip_prefix(field)
            .is_some_and(|rest| rest.starts_with(':'))
    })?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let peak = status_bytes("self", "VmHWM").unwrap();
        let now = status_bytes("self", "VmRSS").unwrap();
        assert!(now > 0 && peak >= now, "VmRSS {now}, VmHWM {peak}");
        assert!(status_bytes("self", "VmNoSuchLine").is_none());
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {}
        assert!(cpu_seconds("self").unwrap() > 0.0);
    }
}
