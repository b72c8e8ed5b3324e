//! Pure autoscaling decision for one worker group: from its bounds and settings, the
//! scheduler's advice (or none when it cannot be asked), the group's pods, the previous
//! autoscaler status and `now`, the new target, the named victims and the new status.
//! No client, no clock. It never picks a running worker by itself: victims come only
//! from the scheduler's `retire_order`.
//!
//! Rules:
//! - off: the target is `replicas` (so `kubectl scale` and an HPA keep working);
//! - up: at once to `min(desired, maxReplicas)`, by at most `maxStep` pods;
//! - down: only to the highest target recommended within the stabilization window
//!   (an unreachable scheduler and a first look both count as "keep the current
//!   target"), by at most `maxStep` pods, or by a quarter (at least 1) when `maxStep`
//!   is 0;
//! - never below `minReplicas` nor above `maxReplicas`;
//! - scheduler unreachable: the target is kept (within the bounds); no victim is named.

use super::observe::PodState;
use crate::crd::{AutoscalerState, AutoscalerStatus, Recommendation, WorkerPoolSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// What the scheduler advises for one group (from `GroupTarget`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Advice {
    /// Workers the group's share of the work asks for, before the bounds.
    pub desired: i32,
    /// The scheduler's reason.
    pub reason: String,
    /// The group's connected workers, first to retire first.
    pub retire_order: Vec<String>,
}

/// One pod of the group, as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPod {
    pub name: String,
    pub state: PodState,
}

/// Which way the target moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
pub enum Direction {
    Up,
    Down,
}

/// A scale decision that changed the target: the Event and metric say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub direction: Direction,
    pub from: i32,
    pub to: i32,
}

/// What the autoscaler decided for one group.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Live worker pods wanted (pending or running).
    pub target: i32,
    /// Running workers to retire, in the scheduler's order; never more than the excess
    /// over the target once never-started pods are deleted.
    pub victims: Vec<String>,
    /// Why, for the Event and `status.autoscaler.lastReason`.
    pub reason: String,
    /// Set when the target moved.
    pub change: Option<Change>,
    pub status: AutoscalerStatus,
}

/// Pods that count toward the target: not finished, not being deleted.
fn live(pods: &[GroupPod]) -> i32 {
    let n = pods
        .iter()
        .filter(|p| matches!(p.state, PodState::Pending | PodState::Running { .. }))
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Running workers to retire so the group comes down to `target`: never-started pods
/// go first (the plan deletes them), then names from `retire_order`, in its order,
/// that are running pods of the group.
pub fn victims(target: i32, pods: &[GroupPod], retire_order: &[String]) -> Vec<String> {
    let pending = pods.iter().filter(|p| p.state == PodState::Pending).count();
    let excess = usize::try_from(live(pods) - target).unwrap_or(0);
    let wanted = excess.saturating_sub(pending);
    retire_order
        .iter()
        .filter(|name| {
            pods.iter()
                .any(|p| &p.name == *name && matches!(p.state, PodState::Running { .. }))
        })
        .take(wanted)
        .cloned()
        .collect()
}

fn seconds(time: &Time) -> i64 {
    time.0.as_second()
}

/// Adds `target` at `now`, drops what fell out of the window and what a later, higher
/// or equal entry dominates (it can never again be the window's highest).
fn remember(
    history: &[Recommendation],
    target: i32,
    now: &Time,
    window: i64,
) -> Vec<Recommendation> {
    let mut kept: Vec<Recommendation> = history
        .iter()
        .filter(|r| seconds(now) - seconds(&r.time) < window.max(1))
        .cloned()
        .collect();
    kept.retain(|r| r.target > target);
    kept.push(Recommendation {
        time: now.clone(),
        target,
    });
    kept
}

/// The decision for one group. `advice` is `None` when the scheduler cannot be asked.
pub fn decide(
    pool: &WorkerPoolSpec,
    advice: Option<&Advice>,
    pods: &[GroupPod],
    previous: Option<&AutoscalerStatus>,
    now: &Time,
) -> Decision {
    let (min, max) = (pool.min_replicas, pool.max_replicas.max(pool.min_replicas));
    let current = previous.map_or_else(|| live(pods), |p| p.target);
    let settings = &pool.autoscaling;
    let window = i64::from(settings.scale_down_stabilization_seconds);
    let history = previous
        .map(|p| p.recommendations.as_slice())
        .unwrap_or_default();
    let first_look = previous.is_none_or(|p| p.state == AutoscalerState::Disabled);

    let (target, reason, state, recommendations) = match advice {
        _ if !settings.enabled => (
            pool.replicas.clamp(min, max),
            format!("autoscaling is off: spec replicas {}", pool.replicas),
            AutoscalerState::Disabled,
            Vec::new(),
        ),
        None => {
            let kept = current.clamp(min, max);
            let why = if kept == current {
                format!("keeping {kept} workers, none retired")
            } else {
                format!("{kept} workers (the bounds {min}..{max}), none retired")
            };
            (
                kept,
                format!("the scheduler cannot be asked: {why}"),
                AutoscalerState::SchedulerUnreachable,
                remember(history, kept, now, window),
            )
        }
        Some(advice) => {
            let desired = advice.desired.clamp(min, max);
            let mut recs = history.to_vec();
            if first_look {
                recs = remember(&recs, current.clamp(min, max), now, window);
            }
            let recs = remember(&recs, desired, now, window);
            let bounds = if desired == advice.desired {
                String::new()
            } else {
                format!(" (bounded to {min}..{max})")
            };
            let (target, how) = if desired >= current {
                let step = if settings.max_step > 0 {
                    settings.max_step
                } else {
                    i32::MAX
                };
                let to = desired.min(current.saturating_add(step));
                let how = if to < desired {
                    format!("; up by at most {step} per decision")
                } else {
                    String::new()
                };
                (to, how)
            } else {
                let highest = recs.iter().map(|r| r.target).max().unwrap_or(desired);
                let step = if settings.max_step > 0 {
                    settings.max_step
                } else {
                    (current / 4).max(1)
                };
                let to = highest.max(current - step).min(current);
                let how = if highest >= current {
                    format!(
                        "; held at {current}: {highest} was recommended within the last {window} s"
                    )
                } else if to > highest {
                    format!("; down by at most {step} per decision")
                } else {
                    String::new()
                };
                (to, how)
            };
            (
                target.clamp(min, max),
                format!("{}{bounds}{how}", advice.reason),
                AutoscalerState::Stable,
                recs,
            )
        }
    };

    let victims = match advice {
        Some(advice) => victims(target, pods, &advice.retire_order),
        None => Vec::new(),
    };
    let now_live = live(pods);
    let state = match state {
        AutoscalerState::Stable if target > now_live => AutoscalerState::ScalingUp,
        AutoscalerState::Stable if target < now_live => AutoscalerState::ScalingDown,
        other => other,
    };
    // Off and never seen before: the spec's count is the baseline, not a decision.
    let baseline = !settings.enabled && previous.is_none();
    let change = (target != current && !baseline).then_some(Change {
        direction: if target > current {
            Direction::Up
        } else {
            Direction::Down
        },
        from: current,
        to: target,
    });
    let last_scale_time = if change.is_some() {
        Some(now.clone())
    } else {
        previous.and_then(|p| p.last_scale_time.clone())
    };
    Decision {
        target,
        victims,
        status: AutoscalerStatus {
            state,
            target,
            last_scale_time,
            last_reason: Some(reason.clone()),
            recommendations,
        },
        reason,
        change,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::AutoscalingSpec;
    use crate::fixtures::time;

    fn pool(min: i32, max: i32, max_step: i32) -> WorkerPoolSpec {
        WorkerPoolSpec {
            min_replicas: min,
            max_replicas: max,
            autoscaling: AutoscalingSpec {
                enabled: true,
                max_step,
                ..AutoscalingSpec::default()
            },
            ..WorkerPoolSpec::default()
        }
    }

    fn running(n: i32) -> Vec<GroupPod> {
        (0..n)
            .map(|i| GroupPod {
                name: format!("w-{i}"),
                state: PodState::Running { ready: true },
            })
            .collect()
    }

    fn advice(desired: i32, pods: &[GroupPod]) -> Advice {
        Advice {
            desired,
            reason: format!("{desired} wanted"),
            // The scheduler's order: newest first, to tell it from the pods' order.
            retire_order: pods.iter().rev().map(|p| p.name.clone()).collect(),
        }
    }

    /// Runs one decision with `n` running pods after `previous`.
    fn step(
        pool: &WorkerPoolSpec,
        desired: Option<i32>,
        n: i32,
        previous: Option<&AutoscalerStatus>,
        at: i64,
    ) -> Decision {
        let pods = running(n);
        let advice = desired.map(|d| advice(d, &pods));
        decide(pool, advice.as_ref(), &pods, previous, &time(at))
    }

    /// A burst scales up at once; the drain scales down only after the window, to the bounds.
    #[test]
    fn burst_then_drain() {
        let p = pool(1, 10, 0);
        let up = step(&p, Some(50), 1, None, 0);
        assert_eq!(
            (up.target, up.change.as_ref().map(|c| c.direction)),
            (10, Some(Direction::Up))
        );
        assert_eq!(up.status.state, AutoscalerState::ScalingUp);
        let held = step(&p, Some(0), 10, Some(&up.status), 30);
        assert_eq!(held.target, 10, "{}", held.reason);
        assert!(held.victims.is_empty());
        let mut last = held;
        let mut at = 61;
        while last.target > 1 {
            let n = last.target;
            last = step(&p, Some(0), n, Some(&last.status), at);
            assert!(last.target < n, "stuck at {n} at {at}: {}", last.reason);
            assert_eq!(
                last.victims.len(),
                usize::try_from(n - last.target).unwrap_or(0)
            );
            at += 5;
        }
        assert_eq!(last.target, 1, "never below minReplicas");
    }

    /// An input that jumps between high and low every few seconds never scales down.
    #[test]
    fn flapping_input_does_not_flap() {
        let p = pool(0, 20, 0);
        let mut last = step(&p, Some(8), 0, None, 0);
        for i in 1..40 {
            let desired = if i % 2 == 0 { 8 } else { 1 };
            last = step(&p, Some(desired), last.target, Some(&last.status), i * 5);
            assert_eq!(last.target, 8, "at {}: {}", i * 5, last.reason);
            assert!(last.victims.is_empty());
        }
    }

    /// With the scheduler unreachable the target is kept, nothing is retired, min still holds.
    #[test]
    fn scheduler_unreachable_keeps_target_and_names_no_victim() {
        let p = pool(2, 10, 0);
        let up = step(&p, Some(6), 0, None, 0);
        let lost = step(&p, None, 6, Some(&up.status), 500);
        assert_eq!(lost.target, 6);
        assert!(lost.victims.is_empty());
        assert_eq!(lost.status.state, AutoscalerState::SchedulerUnreachable);
        let fresh = step(&p, None, 0, None, 0);
        assert_eq!(fresh.target, 2, "minReplicas holds without the scheduler");
        // Back, and asking for less: the unreachable time counted as "keep 6".
        let back = step(&p, Some(2), 6, Some(&lost.status), 520);
        assert_eq!(back.target, 6, "{}", back.reason);
    }

    /// Scale-down waits a full window after the last higher recommendation, even across a restart (status only).
    #[test]
    fn stabilization_window() {
        let p = pool(0, 10, 4);
        let first = step(&p, Some(4), 4, None, 0);
        let status: AutoscalerStatus =
            serde_json::from_value(serde_json::to_value(&first.status).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(status, first.status, "the status round-trips through JSON");
        let early = step(&p, Some(0), 4, Some(&status), 59);
        assert_eq!(early.target, 4);
        let late = step(&p, Some(0), 4, Some(&early.status), 61);
        assert_eq!(late.target, 0);
        assert_eq!(
            late.victims,
            ["w-3", "w-2", "w-1", "w-0"],
            "in the scheduler's order"
        );
    }

    /// maxStep limits both directions; 0 means unlimited up and a quarter (at least 1) down.
    #[test]
    fn step_limit() {
        let limited = pool(0, 100, 3);
        let up = step(&limited, Some(50), 10, None, 0);
        assert_eq!(up.target, 13);
        let p = pool(0, 100, 0);
        let up = step(&p, Some(50), 10, None, 0);
        assert_eq!(up.target, 50);
        let down = step(&p, Some(0), 50, Some(&up.status), 100);
        assert_eq!(down.target, 38);
        let small = step(
            &p,
            Some(0),
            2,
            Some(&AutoscalerStatus {
                target: 2,
                state: AutoscalerState::Stable,
                ..AutoscalerStatus::default()
            }),
            100,
        );
        assert_eq!(small.target, 1);
    }

    /// With minReplicas 0 a group scales to zero when idle and back up when work comes.
    #[test]
    fn min_zero_scales_to_zero_and_back() {
        let p = pool(0, 4, 0);
        let first = step(&p, Some(1), 1, None, 0);
        let zero = step(&p, Some(0), 1, Some(&first.status), 100);
        assert_eq!(
            (zero.target, zero.victims.as_slice()),
            (0, ["w-0".to_owned()].as_slice())
        );
        let again = step(&p, Some(0), 0, Some(&zero.status), 105);
        assert_eq!(again.status.state, AutoscalerState::Stable);
        let back = step(&p, Some(3), 0, Some(&again.status), 110);
        assert_eq!(back.target, 3);
        assert_eq!(back.change.map(|c| (c.from, c.to)), Some((0, 3)));
    }

    /// Off: the target is spec replicas, and only scheduler-named running workers are victims.
    #[test]
    fn off_follows_replicas_and_pending_pods_go_first() {
        let mut p = pool(0, 10, 0);
        p.autoscaling.enabled = false;
        p.replicas = 1;
        let mut pods = running(3);
        pods[2].state = PodState::Pending;
        let a = Advice {
            desired: 9,
            reason: String::new(),
            retire_order: vec!["stranger".to_owned(), "w-0".to_owned(), "w-1".to_owned()],
        };
        let d = decide(&p, Some(&a), &pods, None, &time(0));
        assert_eq!(d.target, 1);
        assert_eq!(
            d.victims,
            ["w-0"],
            "the pending pod goes first; strangers are never named"
        );
        assert_eq!(d.status.state, AutoscalerState::Disabled);
    }
}
