//! The worker's memory policy, a pure function: from one sample of the memory in use
//! (the whole pod's, worker and executors), the limit, the bytes of stored results and
//! the executors' sizes, it decides what to spill, whether to pause, and which running
//! task to stop before the kernel OOM-kills the pod. Thresholds are fractions of the
//! limit, with Dask's defaults (0.6 / 0.7 / 0.8 / 0.95); 0 turns a step off.
//!
//! Not here: reading the figures (`cgroup.rs`, the session), carrying the decision out
//! (the worker core and its loop).

use crate::cgroup;

/// Fractions of the memory limit at which the worker acts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Stored results beyond this much spill to disk as they are stored.
    pub target: f64,
    /// Memory in use above this: stored results spill until it is back under `target`.
    pub spill: f64,
    /// Memory in use above this: no new tasks start (the scheduler is told) until it
    /// falls back under it.
    pub pause: f64,
    /// Memory in use above this: the running task holding the most memory is stopped and
    /// fails with `MemoryLimit`.
    pub terminate: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            target: 0.6,
            spill: 0.7,
            pause: 0.8,
            terminate: 0.95,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ThresholdError {
    #[error(
        "memory threshold {name} is {value}; it must be a fraction between 0 and 1 (0 turns that step off)"
    )]
    OutOfRange { name: &'static str, value: f64 },
    #[error(
        "memory threshold {lower} ({lower_value}) is above {higher} ({higher_value}); set them so that target <= spill <= pause <= terminate (0 turns a step off)"
    )]
    Order {
        lower: &'static str,
        lower_value: f64,
        higher: &'static str,
        higher_value: f64,
    },
}

impl Thresholds {
    pub fn validate(&self) -> Result<(), ThresholdError> {
        let named = [
            ("target", self.target),
            ("spill", self.spill),
            ("pause", self.pause),
            ("terminate", self.terminate),
        ];
        for (name, value) in named {
            if !(0.0..=1.0).contains(&value) {
                return Err(ThresholdError::OutOfRange { name, value });
            }
        }
        let on: Vec<_> = named.iter().filter(|(_, v)| *v > 0.0).collect();
        for pair in on.windows(2) {
            let ((lower, lower_value), (higher, higher_value)) = (*pair[0], *pair[1]);
            if lower_value > higher_value {
                return Err(ThresholdError::Order {
                    lower,
                    lower_value,
                    higher,
                    higher_value,
                });
            }
        }
        Ok(())
    }

    /// Bytes of `limit` that `fraction` stands for (`None`: the step is off).
    fn of(fraction: f64, limit: u64) -> Option<u64> {
        (fraction > 0.0 && limit > 0).then_some((limit as f64 * fraction) as u64)
    }

    /// In-memory bytes of stored results above which they spill as they are stored.
    pub fn store_target(&self, limit: u64) -> u64 {
        Self::of(self.target, limit).unwrap_or(u64::MAX)
    }
}

/// An executor process and the task it is running, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutorMemory {
    pub pid: u32,
    pub task: Option<u64>,
    /// Its private resident memory in bytes (not the shared-memory files it maps).
    pub resident: u64,
}

/// Executors from (pid, running task, resident bytes), for tests.
#[cfg(test)]
pub(crate) fn executors_of(list: &[(u32, Option<u64>, u64)]) -> Vec<ExecutorMemory> {
    list.iter()
        .map(|&(pid, task, resident)| ExecutorMemory {
            pid,
            task,
            resident,
        })
        .collect()
}

/// One measurement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Bytes in use by the pod (cgroup working set), or by the worker and its executors.
    pub used: u64,
    pub limit: u64,
    /// Bytes of stored results held in memory (not spilled).
    pub stored: u64,
    pub executors: Vec<ExecutorMemory>,
}

/// What the worker should do now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Spill stored results until this many bytes of them remain in memory.
    pub spill_to: Option<u64>,
    pub paused: bool,
    /// Stop this task's executor (the task, the executor's resident bytes).
    pub stop: Option<(u64, u64)>,
}

/// Resuming waits until memory is this fraction of the limit under the pause threshold,
/// so a worker hovering at the threshold does not flap.
const RESUME_MARGIN: f64 = 0.05;

/// The decision for `sample`, given whether the worker is paused now and whether a task
/// it stopped earlier has not ended yet (then no second one is stopped: the first
/// executor's memory has not been given back yet).
pub fn decide(t: &Thresholds, sample: &Sample, paused: bool, stopping: bool) -> Decision {
    let limit = sample.limit;
    let used = sample.used;
    let mut decision = Decision::default();
    if limit == 0 {
        return decision;
    }
    if let Some(spill_at) = Thresholds::of(t.spill, limit)
        && used > spill_at
    {
        let target = Thresholds::of(t.target, limit).unwrap_or(spill_at);
        let excess = used - target.min(used);
        decision.spill_to = Some(sample.stored.saturating_sub(excess));
    }
    decision.paused = match Thresholds::of(t.pause, limit) {
        None => false,
        Some(pause_at) if used > pause_at => true,
        Some(_) if paused => {
            let resume_at = Thresholds::of((t.pause - RESUME_MARGIN).max(0.0), limit);
            resume_at.is_some_and(|r| used > r)
        }
        Some(_) => false,
    };
    if !stopping
        && let Some(terminate_at) = Thresholds::of(t.terminate, limit)
        && used > terminate_at
    {
        decision.stop = sample
            .executors
            .iter()
            .filter_map(|e| Some((e.task?, e.resident)))
            .max_by_key(|&(_, resident)| resident);
    }
    decision
}

/// The memory this worker may use: the cgroup limit if one is set, else physical memory.
pub fn default_limit() -> u64 {
    let physical = cgroup::physical_bytes();
    match cgroup::Cgroup::of_this_process().and_then(|c| c.limit()) {
        Some(limit) if physical == 0 || limit < physical => limit,
        _ => physical,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn sample(used_fraction: f64, stored: u64, executors: &[(u32, Option<u64>, u64)]) -> Sample {
        Sample {
            used: (GIB as f64 * used_fraction) as u64,
            limit: GIB,
            stored,
            executors: executors_of(executors),
        }
    }

    /// Under every threshold nothing happens.
    #[test]
    fn quiet_below_thresholds() {
        let d = decide(
            &Thresholds::default(),
            &sample(0.5, GIB / 4, &[]),
            false,
            false,
        );
        assert_eq!(d, Decision::default());
    }

    /// Over the spill threshold, stored results spill by the excess over the target.
    #[test]
    fn spills_the_excess_over_target() {
        let d = decide(
            &Thresholds::default(),
            &sample(0.75, GIB / 2, &[]),
            false,
            false,
        );
        let excess = (GIB as f64 * 0.75) as u64 - (GIB as f64 * 0.6) as u64;
        assert_eq!(d.spill_to, Some(GIB / 2 - excess));
        assert!(!d.paused && d.stop.is_none());
        let all = decide(
            &Thresholds::default(),
            &sample(0.79, 1000, &[]),
            false,
            false,
        );
        assert_eq!(
            all.spill_to,
            Some(0),
            "fewer stored bytes than the excess: spill them all"
        );
    }

    /// Over the pause threshold the worker pauses; it resumes only once memory is a
    /// margin under the threshold (no flapping at the threshold).
    #[test]
    fn pauses_and_resumes_with_a_margin() {
        let t = Thresholds::default();
        assert!(decide(&t, &sample(0.81, 0, &[]), false, false).paused);
        assert!(decide(&t, &sample(0.78, 0, &[]), true, false).paused);
        assert!(!decide(&t, &sample(0.78, 0, &[]), false, false).paused);
        assert!(!decide(&t, &sample(0.74, 0, &[]), true, false).paused);
    }

    /// Over the terminate threshold the running task with the largest executor is
    /// stopped; idle executors are never chosen; none while an earlier stop is pending.
    #[test]
    fn stops_the_largest_running_executor() {
        let t = Thresholds::default();
        let execs = [(10, Some(7), 300), (11, None, 900), (12, Some(8), 600)];
        let d = decide(&t, &sample(0.96, 0, &execs), false, false);
        assert_eq!(d.stop, Some((8, 600)));
        assert!(d.paused && d.spill_to.is_some());
        assert_eq!(decide(&t, &sample(0.96, 0, &execs), true, true).stop, None);
        let idle = decide(&t, &sample(0.96, 0, &[(11, None, 900)]), false, false);
        assert_eq!(idle.stop, None);
    }

    /// A threshold of 0 turns its step off; an unknown limit turns all off.
    #[test]
    fn zero_turns_a_step_off() {
        let t = Thresholds {
            pause: 0.0,
            terminate: 0.0,
            ..Thresholds::default()
        };
        let d = decide(&t, &sample(0.99, 10, &[(1, Some(1), 5)]), false, false);
        assert!(!d.paused && d.stop.is_none() && d.spill_to == Some(0));
        let unknown = Sample {
            limit: 0,
            ..sample(0.99, 10, &[])
        };
        assert_eq!(
            decide(&Thresholds::default(), &unknown, true, false),
            Decision::default()
        );
    }

    /// Thresholds out of range or out of order are refused with their names.
    #[test]
    fn validation_names_the_threshold() {
        assert_eq!(Thresholds::default().validate(), Ok(()));
        let high = Thresholds {
            pause: 1.5,
            ..Thresholds::default()
        };
        assert!(matches!(
            high.validate(),
            Err(ThresholdError::OutOfRange { name: "pause", .. })
        ));
        let order = Thresholds {
            spill: 0.9,
            ..Thresholds::default()
        };
        assert!(matches!(
            order.validate(),
            Err(ThresholdError::Order {
                lower: "spill",
                higher: "pause",
                ..
            })
        ));
        let off = Thresholds {
            spill: 0.0,
            pause: 0.0,
            ..Thresholds::default()
        };
        assert_eq!(off.validate(), Ok(()));
    }
}
