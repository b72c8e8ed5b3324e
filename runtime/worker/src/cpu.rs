//! CPU use: the CPU time of single processes (from `/proc/<pid>/stat`, the fallback where
//! the worker has no cgroup of its own) and the cores busy between two readings of a
//! CPU-time total, which the session puts in each heartbeat. Parsing and arithmetic are
//! pure functions; the clock and the readings are passed in.
//!
//! Not here: the cgroup's CPU accounting and the choice between it and the processes
//! (`cgroup.rs`).

use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/<pid>/stat` times. `libc` is not a dependency of this
/// crate (and calling `sysconf(_SC_CLK_TCK)` would need `unsafe`, which the workspace
/// forbids), so 100 is assumed: the `USER_HZ` Linux reports to user space on x86 and arm.
pub const CLOCK_TICKS_PER_SECOND: u64 = 100;

/// CPU time in clock ticks from the text of `/proc/<pid>/stat`: user and system time of
/// the process (`utime`, `stime`, fields 14 and 15) plus those of its children it has
/// waited for (`cutime`, `cstime`, fields 16 and 17), so that the total does not fall
/// when an executor process exits and is replaced. `None` if the text is not such a line.
pub fn parse_proc_stat_ticks(text: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces and parentheses
    // itself: the fields after it start past the last ')'.
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (the state): fields 14..=17 are indices 11..=14.
    let ticks = fields.get(11..15)?;
    ticks
        .iter()
        .map(|f| f.parse::<i64>().ok().map(|t| t.max(0) as u64))
        .sum()
}

/// CPU time of a process (and its reaped children) in microseconds; 0 when it is gone.
pub fn process_cpu_us(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|text| parse_proc_stat_ticks(&text))
        .map_or(0, |ticks| ticks * (1_000_000 / CLOCK_TICKS_PER_SECOND))
}

/// Cores busy on average over `wall`, from CPU time totals (microseconds) at its start and
/// end. A total that fell (a process left the measured set) or no time passed reads 0.
pub fn cores_busy(cpu_before_us: u64, cpu_now_us: u64, wall: Duration) -> f64 {
    let wall_us = wall.as_micros();
    if wall_us == 0 {
        return 0.0;
    }
    cpu_now_us.saturating_sub(cpu_before_us) as f64 / wall_us as f64
}

/// Readings closer together than this do not make a new figure: process CPU time counts
/// in 10 ms ticks, and the heartbeat timer fires at once when it starts (and again when the
/// scheduler sets the interval), so a shorter interval would be mostly rounding.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Cores busy since the previous reading of a CPU-time total.
#[derive(Clone, Copy, Debug)]
pub struct CpuMeter {
    cpu_us: u64,
    at: Instant,
    /// The last figure (0 before the first interval).
    busy: f64,
}

impl CpuMeter {
    /// Starts measuring from a total of `cpu_us` microseconds read at `at`.
    pub fn new(cpu_us: u64, at: Instant) -> Self {
        CpuMeter {
            cpu_us,
            at,
            busy: 0.0,
        }
    }

    /// Cores busy between the previous reading and this one (`cpu_us` read at `at`). A
    /// reading less than [`MIN_INTERVAL`] after the previous one is not kept: the last
    /// figure stands.
    pub fn read(&mut self, cpu_us: u64, at: Instant) -> f64 {
        let wall = at.saturating_duration_since(self.at);
        if wall < MIN_INTERVAL {
            return self.busy;
        }
        let busy = cores_busy(self.cpu_us, cpu_us, wall);
        *self = CpuMeter { cpu_us, at, busy };
        busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real-looking stat line: utime+stime+cutime+cstime are summed.
    #[test]
    fn parses_a_stat_line() {
        let text = "4242 (python3) S 1 4242 4242 0 -1 4194560 9000 0 12 0 \
                    350 150 20 5 20 0 3 0 123456 300000000 20000 18446744073709551615 \
                    1 1 0 0 0 0 0 16781312 2 0 0 0 17 3 0 0 0 0 0\n";
        assert_eq!(parse_proc_stat_ticks(text), Some(525));
    }

    /// A command name with spaces and parentheses does not shift the fields.
    #[test]
    fn command_names_with_parentheses() {
        let text = "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 10 20 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_proc_stat_ticks(text), Some(30));
    }

    /// Text that is not a stat line (empty, truncated, not numbers) reads as nothing.
    #[test]
    fn rejects_other_text() {
        assert_eq!(parse_proc_stat_ticks(""), None);
        assert_eq!(parse_proc_stat_ticks("1 (x) S 1 2 3"), None);
        let bad = "7 (x) R 1 7 7 0 -1 0 0 0 0 0 ten 20 0 0 20 0";
        assert_eq!(parse_proc_stat_ticks(bad), None);
    }

    /// This process's own stat file parses (the format the fixtures stand for).
    #[test]
    fn reads_this_process() {
        let text = std::fs::read_to_string("/proc/self/stat").expect("stat");
        assert!(parse_proc_stat_ticks(&text).is_some(), "{text}");
    }

    /// Cores busy is CPU time over wall time; a total that fell or no wall time is 0.
    #[test]
    fn cores_busy_is_cpu_over_wall() {
        let two_s = Duration::from_secs(2);
        assert_eq!(cores_busy(1_000_000, 4_000_000, two_s), 1.5);
        assert_eq!(cores_busy(0, 0, two_s), 0.0);
        assert_eq!(cores_busy(5_000_000, 1_000_000, two_s), 0.0);
        assert_eq!(cores_busy(0, 1_000_000, Duration::ZERO), 0.0);
    }

    /// The meter measures each interval from the previous reading; a reading too soon
    /// after it keeps the last figure and does not move the interval's start.
    #[test]
    fn meter_reads_successive_intervals() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut meter = CpuMeter::new(10_000_000, t0);
        assert_eq!(meter.read(10_001_000, t0 + Duration::from_millis(5)), 0.0);
        assert_eq!(meter.read(12_000_000, t0 + s(1)), 2.0);
        assert_eq!(
            meter.read(13_000_000, t0 + s(1) + Duration::from_millis(50)),
            2.0
        );
        assert_eq!(meter.read(13_000_000, t0 + s(3)), 0.5);
        assert_eq!(meter.read(12_000_000, t0 + s(4)), 0.0, "a total that fell");
    }
}
