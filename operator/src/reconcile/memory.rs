//! Pure: memory quantities in bytes, and a group's `oomPolicy` decision. After an OOM
//! kill of a pod at the group's current limit, new pods of the group get that limit times
//! `increaseFactor`, never above `maxMemory`; the raised limit is kept in status (it
//! survives an operator restart) and starts over when the spec's own limit changes.
//! Running pods keep the limit they were created with. No client, no clock.

use super::losses::Loss;
use super::validate::ValidatedGroup;
use crate::crd::RaisedMemoryLimit;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeMap;

const KI: u64 = 1024;
const MI: u64 = KI * KI;
const GI: u64 = MI * KI;
const TI: u64 = GI * KI;

/// A memory quantity in bytes (`256Mi`, `1G`, `1.5Gi`, `1e9`); `None` when it is not one.
pub fn bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let scale: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "Pi" => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        exponent if exponent.starts_with(['e', 'E']) => {
            10f64.powi(exponent[1..].parse::<i32>().ok()?)
        }
        _ => return None,
    };
    let value = number.parse::<f64>().ok()? * scale;
    // Saturating float-to-int cast; a fraction of a byte rounds up, as Kubernetes does.
    (value.is_finite() && value >= 0.0).then(|| value.ceil() as u64)
}

/// Bytes of a quantity (see `bytes`).
pub fn quantity_bytes(q: &Quantity) -> Option<u64> {
    bytes(&q.0)
}

/// Bytes as the shortest exact binary quantity: `384Mi`, `4Gi`, `1536Ki`, `1000`.
pub fn format(bytes: u64) -> String {
    for (unit, suffix) in [(TI, "Ti"), (GI, "Gi"), (MI, "Mi"), (KI, "Ki")] {
        if bytes >= unit && bytes % unit == 0 {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// `limit` times `factor`, rounded up to a whole MiB (a limit the pod spec shows plainly),
/// at most `max`.
pub fn raise(limit: u64, factor: f64, max: u64) -> u64 {
    // Saturating float-to-int cast: out of range becomes u64::MAX, then capped.
    let raised = (limit as f64 * factor).ceil() as u64;
    raised
        .div_ceil(MI)
        .saturating_mul(MI)
        .min(max)
        .max(limit.min(max))
}

/// The spec's memory limit of a group's workers, in bytes.
pub fn spec_limit(group: &ValidatedGroup) -> Option<u64> {
    group
        .pool
        .resources
        .as_ref()?
        .limits
        .as_ref()?
        .get("memory")
        .and_then(quantity_bytes)
}

/// What `oomPolicy` did for a group this time (an Event says it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// New pods get `to` instead of `from`, because `pod` was OOM-killed at `killed_at`.
    Raised {
        pod: String,
        killed_at: u64,
        from: u64,
        to: u64,
        /// `to` is `maxMemory`: it can go no higher.
        at_maximum: bool,
    },
    /// `pod` was OOM-killed at `limit`, which is already `maxMemory`.
    AtMaximum { pod: String, limit: u64 },
}

/// A group's memory for new pods after this reconcile's kills.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMemory {
    pub group: String,
    /// The record to keep in status (`None`: new pods get the spec's limit).
    pub record: Option<RaisedMemoryLimit>,
    /// What changed, for the Event.
    pub step: Option<Step>,
}

impl GroupMemory {
    /// The limit new pods get in bytes, when it differs from the spec's.
    pub fn raised(&self) -> Option<u64> {
        self.record.as_ref().and_then(|r| bytes(&r.limit))
    }
}

/// The limits new pods get, by group, where `oomPolicy` raised them.
pub fn raised_limits(memory: &[GroupMemory]) -> BTreeMap<String, u64> {
    memory
        .iter()
        .filter_map(|m| Some((m.group.clone(), m.raised()?)))
        .collect()
}

/// The group's raised limit after `kills` (this reconcile's new OOM kills of its pods),
/// from `previous` (the status record). Without `oomPolicy`, or with a spec limit other
/// than the one the record was raised from, there is no raised limit.
pub fn decide(
    group: &ValidatedGroup,
    previous: Option<&RaisedMemoryLimit>,
    kills: &[&Loss],
    now: &Time,
) -> GroupMemory {
    let none = GroupMemory {
        group: group.name.clone(),
        record: None,
        step: None,
    };
    let (Some(policy), Some(spec)) = (group.pool.oom_policy.as_ref(), spec_limit(group)) else {
        return none;
    };
    let Some(max) = bytes(&policy.max_memory) else {
        return none;
    };
    // The record still applies while it was raised from today's spec limit.
    let mut record = previous
        .filter(|r| bytes(&r.spec_limit) == Some(spec))
        .and_then(|r| {
            let limit = bytes(&r.limit)?.min(max);
            (limit > spec).then(|| RaisedMemoryLimit {
                limit: format(limit),
                at_maximum: limit >= max,
                ..r.clone()
            })
        });
    let current = record
        .as_ref()
        .and_then(|r| bytes(&r.limit))
        .unwrap_or(spec);
    // Only a kill at the current limit (or above) says the current limit is too small; a
    // pod killed at an older, lower limit was already answered. The largest one counts.
    let trigger = kills
        .iter()
        .map(|k| (k.memory_bytes().unwrap_or(spec), k.pod.as_str()))
        .filter(|(limit, _)| *limit >= current)
        .max_by_key(|(limit, _)| *limit);
    let step = trigger.map(|(killed_at, pod)| {
        let to = raise(killed_at, policy.increase_factor, max);
        if to > current {
            record = Some(RaisedMemoryLimit {
                limit: format(to),
                spec_limit: format(spec),
                last_raise_time: now.clone(),
                at_maximum: to >= max,
            });
            Step::Raised {
                pod: pod.to_owned(),
                killed_at,
                from: current,
                to,
                at_maximum: to >= max,
            }
        } else {
            Step::AtMaximum {
                pod: pod.to_owned(),
                limit: current,
            }
        }
    });
    GroupMemory {
        group: group.name.clone(),
        record,
        step,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::OomPolicy;
    use crate::fixtures::{memory, time};
    use crate::reconcile::losses::Cause;

    /// Quantities in the forms Kubernetes writes them become bytes; junk is None.
    #[test]
    fn quantities_are_bytes() {
        assert_eq!(bytes("256Mi"), Some(256 * MI));
        assert_eq!(bytes("1.5Gi"), Some(1536 * MI));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("129e6"), Some(129_000_000));
        assert_eq!(bytes("1000"), Some(1000));
        assert_eq!(bytes("lots"), None);
        assert_eq!(bytes("-1Gi"), None);
    }

    /// Bytes print as the shortest exact binary quantity, and read back the same.
    #[test]
    fn bytes_format_exactly() {
        for (value, text) in [
            (384 * MI, "384Mi"),
            (4 * GI, "4Gi"),
            (1536 * KI, "1536Ki"),
            (1000, "1000"),
        ] {
            assert_eq!(format(value), text);
            assert_eq!(bytes(text), Some(value));
        }
    }

    /// Raising multiplies, rounds up to a whole MiB and never passes the maximum.
    #[test]
    fn raise_rounds_up_and_caps() {
        assert_eq!(raise(256 * MI, 1.5, 4 * GI), 384 * MI);
        assert_eq!(raise(256 * MI, 1.3, 4 * GI), 333 * MI);
        assert_eq!(raise(3 * GI, 1.5, 4 * GI), 4 * GI);
        assert_eq!(raise(4 * GI, 2.0, 4 * GI), 4 * GI);
    }

    fn group(limit: &str, max: &str) -> ValidatedGroup {
        let mut pool = crate::crd::WorkerPoolSpec {
            resources: Some(memory(limit, None)),
            ..crate::crd::WorkerPoolSpec::default()
        };
        pool.oom_policy = Some(OomPolicy {
            increase_factor: 1.5,
            max_memory: max.to_owned(),
        });
        ValidatedGroup {
            name: "default".to_owned(),
            pool,
        }
    }

    fn kill(pod: &str, limit: &str) -> Loss {
        Loss {
            pod: pod.to_owned(),
            uid: format!("uid-{pod}"),
            group: Some("default".to_owned()),
            cause: Cause::OomKilled,
            container: "worker".to_owned(),
            reason: "OOMKilled".to_owned(),
            exit_code: Some(137),
            memory_limit: Some(limit.to_owned()),
            message: None,
            time: time(10),
        }
    }

    /// One kill at the spec limit raises new pods' limit by the factor and records it.
    #[test]
    fn a_kill_raises_the_limit_of_new_pods() {
        let g = group("256Mi", "1Gi");
        let k = kill("w-0", "256Mi");
        let memory = decide(&g, None, &[&k], &time(20));
        assert_eq!(memory.raised(), Some(384 * MI));
        let record = memory.record.clone().unwrap_or_else(|| unreachable!());
        assert_eq!(
            (record.spec_limit.as_str(), record.at_maximum),
            ("256Mi", false)
        );
        assert_eq!(
            memory.step,
            Some(Step::Raised {
                pod: "w-0".to_owned(),
                killed_at: 256 * MI,
                from: 256 * MI,
                to: 384 * MI,
                at_maximum: false
            })
        );
    }

    /// Many pods killed at once raise the limit once; a pod killed at an older, lower
    /// limit raises nothing.
    #[test]
    fn simultaneous_and_stale_kills_raise_once() {
        let g = group("256Mi", "4Gi");
        let (a, b) = (kill("w-0", "256Mi"), kill("w-1", "256Mi"));
        let first = decide(&g, None, &[&a, &b], &time(20));
        assert_eq!(first.raised(), Some(384 * MI));
        let late = kill("w-2", "256Mi");
        let second = decide(&g, first.record.as_ref(), &[&late], &time(30));
        assert_eq!(second.raised(), Some(384 * MI));
        assert_eq!(second.step, None);
        assert_eq!(second.record, first.record);
    }

    /// At maxMemory the limit stays and the step says it can go no higher.
    #[test]
    fn max_memory_caps_the_limit() {
        let g = group("512Mi", "700Mi");
        let k = kill("w-0", "512Mi");
        let first = decide(&g, None, &[&k], &time(20));
        assert_eq!(first.raised(), Some(700 * MI));
        assert!(matches!(
            first.step,
            Some(Step::Raised {
                at_maximum: true,
                ..
            })
        ));
        let again = kill("w-1", "700Mi");
        let second = decide(&g, first.record.as_ref(), &[&again], &time(30));
        assert_eq!(second.raised(), Some(700 * MI));
        assert_eq!(
            second.step,
            Some(Step::AtMaximum {
                pod: "w-1".to_owned(),
                limit: 700 * MI
            })
        );
    }

    /// A changed spec limit, or no oomPolicy, drops the raised limit.
    #[test]
    fn spec_changes_start_over() {
        let g = group("256Mi", "4Gi");
        let k = kill("w-0", "256Mi");
        let raised = decide(&g, None, &[&k], &time(20)).record;
        let bigger = group("1Gi", "4Gi");
        assert_eq!(
            decide(&bigger, raised.as_ref(), &[], &time(30)).record,
            None
        );
        let mut off = group("256Mi", "4Gi");
        off.pool.oom_policy = None;
        assert_eq!(decide(&off, raised.as_ref(), &[], &time(30)).record, None);
        let kept = decide(&g, raised.as_ref(), &[], &time(30));
        assert_eq!((kept.raised(), kept.step), (Some(384 * MI), None));
    }
}
