//! Memory figures of this process and its limit (cgroup-aware), for heartbeats and
//! defaults. Linux only; elsewhere figures are 0 and the limit is unknown.

/// Resident set size of this process in bytes.
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// The memory this worker may use: the cgroup limit if one is set, else physical memory.
pub fn default_limit() -> u64 {
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .filter_map(|s| s.trim().parse::<u64>().ok())
    .find(|&v| v < (1 << 60));
    let physical = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|k| k.parse::<u64>().ok())
                })
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0);
    match cgroup {
        Some(limit) if physical == 0 || limit < physical => limit,
        _ => physical,
    }
}
