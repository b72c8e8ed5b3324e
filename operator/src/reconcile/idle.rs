//! Pure idle culling verdict: from `spec.idleTimeout`, the scheduler's answer (or none
//! when it cannot be asked) and whether the warning was already sent, what to do. A
//! cluster with a connected client or unfinished work, or whose scheduler cannot be
//! asked, is never culled. No client, no clock.

use crate::scheduler_api::Adaptive;

/// The warning goes out at this fraction of the timeout.
pub const WARN_AT: f64 = 0.8;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Idle {
    /// No timeout, or the scheduler cannot be asked: nothing changes.
    Unknown,
    /// A client or work (or not idle long enough for a warning): any warning is cleared.
    Busy,
    /// Idle past the warning point, for the first time in this idle period.
    Warn { idle_seconds: f64, timeout: i64 },
    /// Idle past the warning point, already warned.
    Warned,
    /// Idle for the whole timeout: delete the cluster.
    Cull { idle_seconds: f64, timeout: i64 },
}

pub fn judge(timeout: Option<i64>, adaptive: Option<&Adaptive>, warned: bool) -> Idle {
    let (Some(timeout), Some(answer)) = (timeout, adaptive) else {
        return Idle::Unknown;
    };
    if answer.clients > 0 || answer.unfinished_tasks > 0 {
        return Idle::Busy;
    }
    // Whole seconds are exact in an f64.
    let limit = timeout as f64;
    let idle_seconds = answer.idle_seconds;
    if idle_seconds >= limit {
        Idle::Cull {
            idle_seconds,
            timeout,
        }
    } else if idle_seconds >= limit * WARN_AT {
        if warned {
            Idle::Warned
        } else {
            Idle::Warn {
                idle_seconds,
                timeout,
            }
        }
    } else {
        Idle::Busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(idle_seconds: f64, clients: u32, unfinished_tasks: u64) -> Adaptive {
        Adaptive {
            idle_seconds,
            clients,
            unfinished_tasks,
            ..Adaptive::default()
        }
    }

    /// Idle for the timeout culls; at 80% it warns once; before, nothing.
    #[test]
    fn warns_once_then_culls() {
        let t = Some(100);
        assert_eq!(judge(t, Some(&answer(10.0, 0, 0)), false), Idle::Busy);
        assert!(matches!(
            judge(t, Some(&answer(85.0, 0, 0)), false),
            Idle::Warn { .. }
        ));
        assert_eq!(judge(t, Some(&answer(90.0, 0, 0)), true), Idle::Warned);
        assert!(matches!(
            judge(t, Some(&answer(100.0, 0, 0)), true),
            Idle::Cull { .. }
        ));
    }

    /// A connected client, unfinished work, no timeout or an unreachable scheduler never cull.
    #[test]
    fn never_culls_busy_or_unknown() {
        let t = Some(100);
        assert_eq!(judge(t, Some(&answer(1e6, 1, 0)), false), Idle::Busy);
        assert_eq!(judge(t, Some(&answer(1e6, 0, 3)), false), Idle::Busy);
        assert_eq!(judge(None, Some(&answer(1e6, 0, 0)), false), Idle::Unknown);
        assert_eq!(judge(t, None, true), Idle::Unknown);
    }
}
