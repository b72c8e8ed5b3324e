//! Pure: the Events one reconcile publishes, built as data from what was decided
//! (scale decisions, idle verdict, memory raised), observed (pods lost, OOM kills),
//! planned and done (the apply `Outcome`), and how the status changed. Publishing them
//! is the caller's one place; no client here.

use super::apply::Outcome;
use super::autoscale::{Decision, Direction};
use super::idle::Idle;
use super::losses::{self, Loss, Running};
use super::memory::{self, GroupMemory, Step};
use super::plan::{DeleteReason, Plan};
use super::validate::ValidatedGroup;
use crate::crd::ShoalClusterStatus;
use crate::names;

/// Longest note the API server takes (events.k8s.io/v1 `note`: 1 kB).
const MAX_NOTE: usize = 1024;
/// Task keys an Event names (the status keeps more).
const NAMED_TASKS: usize = 5;

/// One Event to publish on the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub action: &'static str,
    pub note: String,
    /// Its own Event even when one of the same reason came before (a scale step and its
    /// reason): Event series keep only the first note, and every step must stay readable.
    pub distinct: bool,
}

fn normal(reason: &'static str, action: &'static str, note: String) -> Note {
    Note {
        warning: false,
        reason,
        action,
        note,
        distinct: false,
    }
}

fn warning(reason: &'static str, action: &'static str, note: String) -> Note {
    Note {
        warning: true,
        reason,
        action,
        note,
        distinct: false,
    }
}

/// Everything the Events of one reconcile are made from.
pub struct Inputs<'a> {
    /// Scale decisions by group, in group order.
    pub decisions: &'a [(String, Decision)],
    /// The cluster's worker groups (for the advice: where their spec is).
    pub groups: &'a [ValidatedGroup],
    /// Pods lost since the last look (new ones only).
    pub losses: &'a [Loss],
    /// What `oomPolicy` did per group.
    pub memory: &'a [GroupMemory],
    pub idle: Idle,
    pub plan: &'a Plan,
    pub outcome: &'a Outcome,
    /// A failed apply, described (object and the API's message).
    pub apply_error: Option<&'a str>,
    pub version: &'a str,
    pub previous: Option<&'a ShoalClusterStatus>,
    pub status: &'a ShoalClusterStatus,
}

/// `note` cut to what the API server takes, on a character boundary.
fn fit(mut note: String) -> String {
    if note.len() > MAX_NOTE {
        let mut cut = MAX_NOTE - '…'.len_utf8();
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push('…');
    }
    note
}

/// Where a group's worker settings are, for advice.
fn spec_of(group: &str) -> String {
    if group == names::DEFAULT_GROUP {
        "spec.workers".to_owned()
    } else {
        format!("spec.workers of ShoalWorkerGroup {group}")
    }
}

/// What a lost worker was running, for humans: `running 2 tasks: 'a', 'b'`, `running no
/// tasks`, `tasks unknown: scheduler unreachable (...)`.
pub fn running_text(running: Option<&Running>) -> String {
    let plural = |n: u32| if n == 1 { "task" } else { "tasks" };
    match running {
        Some(Running::Tasks { keys, total: 0 }) if keys.is_empty() => "running no tasks".to_owned(),
        Some(Running::Tasks { keys, total }) => {
            let named: Vec<String> = keys
                .iter()
                .take(NAMED_TASKS)
                .map(|k| format!("'{}'", losses::clip(k, 60)))
                .collect();
            let shown = u32::try_from(named.len()).unwrap_or(u32::MAX);
            let more = if *total > shown {
                format!(" and {} more", total - shown)
            } else {
                String::new()
            };
            if named.is_empty() {
                format!("running {total} {}", plural(*total))
            } else {
                format!(
                    "running {total} {}: {}{more}",
                    plural(*total),
                    named.join(", ")
                )
            }
        }
        Some(Running::UnknownWorker) => {
            "tasks unknown: the scheduler has no worker of that name (it never connected, or \
             the scheduler restarted since)"
                .to_owned()
        }
        Some(Running::Unreachable(why)) => {
            format!(
                "tasks unknown: scheduler unreachable ({})",
                losses::clip(why, 200)
            )
        }
        None => "tasks unknown: scheduler unreachable".to_owned(),
    }
}

/// The Warning Event of a worker pod killed for memory: the pod, its container's end and
/// limit, the tasks it ran, that a new pod replaces it, and the fix.
fn worker_oom_note(loss: &Loss, group: Option<&ValidatedGroup>, outcome: &Outcome) -> Note {
    let name = loss.group.as_deref().unwrap_or_default();
    let spec = spec_of(name);
    let policy = group.and_then(|g| g.pool.oom_policy.as_ref());
    let advice = match (&loss.memory_limit, policy) {
        (None, _) => format!(
            "it had no memory limit (the node ran out of memory): set \
             {spec}.resources.limits.memory, or make chunks smaller"
        ),
        (Some(_), Some(policy)) => format!(
            "oomPolicy raises the limit of new pods (up to {}); or make chunks smaller",
            policy.max_memory
        ),
        (Some(_), None) => format!(
            "raise {spec}.resources.limits.memory or set {spec}.oomPolicy, or make chunks \
             smaller"
        ),
    };
    Note {
        distinct: true,
        ..warning(
            "WorkerOOMKilled",
            "ReplaceWorker",
            fit(format!(
                "worker pod {} (group {name}) was OOM-killed: container {} {}, exit code {}, \
                 memory limit {}; {} (the scheduler retries them; past their retries they fail \
                 with WorkerOOMKilled); a new pod replaces it. Fix: {advice}",
                loss.pod,
                loss.container,
                loss.reason,
                loss.exit_code
                    .map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
                loss.memory_limit.as_deref().unwrap_or("none"),
                running_text(outcome.running.get(&loss.pod)),
            )),
        )
    }
}

/// The Warning Event of the scheduler container killed for memory.
fn scheduler_oom_note(loss: &Loss) -> Note {
    Note {
        distinct: true,
        ..warning(
            "SchedulerOOMKilled",
            "WatchScheduler",
            fit(format!(
                "scheduler pod {} was OOM-killed: container {} {}, exit code {}, memory limit \
                 {}; the kubelet restarts it, but its running work is lost and clients are \
                 disconnected (they must reconnect and submit again). Fix: raise \
                 spec.scheduler.resources.limits.memory, or submit smaller graphs",
                loss.pod,
                loss.container,
                loss.reason,
                loss.exit_code
                    .map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
                loss.memory_limit.as_deref().unwrap_or("none"),
            )),
        )
    }
}

/// The Event of what `oomPolicy` did for a group.
fn memory_note(group: &GroupMemory, policy_max: &str) -> Option<Note> {
    let name = &group.group;
    let note = match group.step.as_ref()? {
        Step::Raised {
            pod,
            killed_at,
            from,
            to,
            at_maximum,
        } => {
            let cap = if *at_maximum {
                format!("; this is oomPolicy.maxMemory ({policy_max}): it can go no higher")
            } else {
                String::new()
            };
            normal(
                "MemoryLimitRaised",
                "RaiseMemoryLimit",
                format!(
                    "worker group {name}: memory limit of new worker pods raised from {} to {} \
                     (oomPolicy) because pod {pod} was OOM-killed at {}; running pods keep \
                     their limit{cap}",
                    memory::format(*from),
                    memory::format(*to),
                    memory::format(*killed_at),
                ),
            )
        }
        Step::AtMaximum { pod, limit } => warning(
            "MemoryLimitAtMaximum",
            "RaiseMemoryLimit",
            format!(
                "worker group {name}: pod {pod} was OOM-killed at {}, which is already \
                 oomPolicy.maxMemory ({policy_max}): the limit can go no higher; raise \
                 {}.oomPolicy.maxMemory or make chunks smaller",
                memory::format(*limit),
                spec_of(name),
            ),
        ),
    };
    Some(Note {
        distinct: true,
        ..note
    })
}

/// The Events, in the order things happened.
pub fn notes(inputs: &Inputs<'_>) -> Vec<Note> {
    let mut out = Vec::new();
    for loss in inputs.losses {
        if loss.cause != losses::Cause::OomKilled {
            continue;
        }
        match loss.group.as_deref() {
            None => out.push(scheduler_oom_note(loss)),
            Some(name) => out.push(worker_oom_note(
                loss,
                inputs.groups.iter().find(|g| g.name == name),
                inputs.outcome,
            )),
        }
    }
    for group in inputs.memory {
        let max = inputs
            .groups
            .iter()
            .find(|g| g.name == group.group)
            .and_then(|g| g.pool.oom_policy.as_ref())
            .map_or("", |p| p.max_memory.as_str());
        out.extend(memory_note(group, max));
    }
    for (group, decision) in inputs.decisions {
        if let Some(change) = &decision.change {
            let (reason, word) = match change.direction {
                Direction::Up => ("ScaledUp", "up"),
                Direction::Down => ("ScaledDown", "down"),
            };
            out.push(Note {
                distinct: true,
                ..normal(
                    reason,
                    "Autoscale",
                    format!(
                        "worker group {group}: scaling {word} from {} to {} workers: {}",
                        change.from, change.to, decision.reason
                    ),
                )
            });
        }
    }
    match inputs.idle {
        Idle::Warn {
            idle_seconds,
            timeout,
        } => out.push(warning(
            "IdleTimeoutSoon",
            "CheckIdle",
            format!(
                "no client and no work for {idle_seconds:.0} s: the cluster will be deleted \
                 after {timeout} s idle (spec.idleTimeout); connect a client to keep it"
            ),
        )),
        Idle::Cull {
            idle_seconds,
            timeout,
        } => out.push(normal(
            "IdleTimeout",
            "DeleteCluster",
            format!(
                "deleting the cluster: no client and no work for {idle_seconds:.0} s, \
                 spec.idleTimeout is {timeout} s"
            ),
        )),
        Idle::Unknown | Idle::Busy | Idle::Warned => {}
    }
    for deletion in &inputs.outcome.deleted {
        let detail = if deletion.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", deletion.detail)
        };
        let reason: &'static str = deletion.reason.into();
        let event = match deletion.reason {
            // The WorkerOOMKilled Event of the kill says it all, once.
            DeleteReason::OomKilled => continue,
            DeleteReason::Retired => normal(
                reason,
                "DeletePod",
                format!("deleted retired worker pod {}", deletion.name),
            ),
            DeleteReason::Died => {
                let running = inputs
                    .outcome
                    .running
                    .get(&deletion.name)
                    .map(|r| format!("; it was {}", running_text(Some(r))))
                    .unwrap_or_default();
                warning(
                    reason,
                    "DeletePod",
                    fit(format!("deleted pod {}{detail}{running}", deletion.name)),
                )
            }
            _ => normal(
                reason,
                "DeletePod",
                format!("deleted pod {}{detail}", deletion.name),
            ),
        };
        out.push(event);
    }
    if !inputs.outcome.created.is_empty() {
        out.push(normal(
            "Created",
            "CreatePods",
            format!("created pods {}", inputs.outcome.created.join(", ")),
        ));
    }
    let previous_digest = inputs.previous.and_then(|s| s.image_digest.as_deref());
    if let Some(digest) = &inputs.plan.image_digest
        && previous_digest != Some(digest.as_str())
        && inputs.apply_error.is_none()
    {
        out.push(normal(
            "ImagePinned",
            "PinImage",
            format!(
                "version {} runs image {digest}; workers start from it",
                inputs.version
            ),
        ));
    }
    for (worker, why) in &inputs.outcome.refused {
        out.push(warning(
            "RetireRefused",
            "Retire",
            format!("the scheduler kept worker {worker} (it stays and takes tasks again): {why}"),
        ));
    }
    if let Some(error) = &inputs.outcome.retire_error {
        out.push(warning("ScaleDownWaiting", "Retire", error.clone()));
    }
    if let Some(error) = inputs.apply_error {
        out.push(warning("ApplyFailed", "Apply", error.to_owned()));
    }
    if inputs.previous.map(|p| &p.conditions) != Some(&inputs.status.conditions) {
        for skew in inputs
            .status
            .conditions
            .iter()
            .filter(|c| c.type_ == "VersionSkew" && c.status == "True")
        {
            out.push(warning(
                "VersionSkew",
                "CheckVersions",
                skew.message.clone(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::AutoscalerStatus;
    use crate::reconcile::autoscale::Change;
    use crate::reconcile::plan::Deletion;
    use std::collections::BTreeMap;

    fn decision(from: i32, to: i32) -> Decision {
        Decision {
            target: to,
            victims: Vec::new(),
            reason: "12 ready tasks".to_owned(),
            change: Some(Change {
                direction: if to > from {
                    Direction::Up
                } else {
                    Direction::Down
                },
                from,
                to,
            }),
            status: AutoscalerStatus::default(),
        }
    }

    fn run(decisions: &[(String, Decision)], outcome: &Outcome, idle: Idle) -> Vec<Note> {
        let status = ShoalClusterStatus::default();
        notes(&Inputs {
            decisions,
            groups: &[],
            losses: &[],
            memory: &[],
            idle,
            plan: &Plan::default(),
            outcome,
            apply_error: None,
            version: "0.3.0",
            previous: Some(&status),
            status: &status,
        })
    }

    /// A scale decision names the group, direction, from -> to and the scheduler's reason,
    /// as an Event of its own (never folded into an earlier step's series).
    #[test]
    fn scale_events_name_direction_counts_and_reason() {
        let notes = run(
            &[("highmem".to_owned(), decision(4, 1))],
            &Outcome::default(),
            Idle::Busy,
        );
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].reason, "ScaledDown");
        assert!(notes[0].distinct);
        assert_eq!(
            notes[0].note,
            "worker group highmem: scaling down from 4 to 1 workers: 12 ready tasks"
        );
    }

    /// Retired workers are reported deleted; refused ones are a Warning saying why.
    #[test]
    fn retirement_outcomes() {
        let outcome = Outcome {
            deleted: vec![Deletion {
                name: "w-1".to_owned(),
                reason: DeleteReason::Retired,
                detail: String::new(),
            }],
            retired: vec!["w-1".to_owned()],
            refused: BTreeMap::from([("w-2".to_owned(), "holds the only copy".to_owned())]),
            ..Outcome::default()
        };
        let notes = run(&[], &outcome, Idle::Unknown);
        let reasons: Vec<&str> = notes.iter().map(|n| n.reason).collect();
        assert_eq!(reasons, ["Retired", "RetireRefused"]);
        assert!(notes[1].warning && notes[1].note.contains("holds the only copy"));
    }

    /// What a lost worker ran reads as the issue asks: named tasks, none, or unknown.
    #[test]
    fn running_texts() {
        let tasks = |keys: &[&str], total| Running::Tasks {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            total,
        };
        assert_eq!(
            running_text(Some(&tasks(&["alloc-0", "x"], 2))),
            "running 2 tasks: 'alloc-0', 'x'"
        );
        assert_eq!(running_text(Some(&tasks(&[], 0))), "running no tasks");
        assert_eq!(
            running_text(Some(&tasks(&["a", "b", "c", "d", "e", "f"], 30))),
            "running 30 tasks: 'a', 'b', 'c', 'd', 'e' and 25 more"
        );
        assert!(
            running_text(Some(&Running::Unreachable("cannot reach".to_owned())))
                .starts_with("tasks unknown: scheduler unreachable (cannot reach")
        );
    }

    fn kill(pod: &str) -> Loss {
        Loss {
            pod: pod.to_owned(),
            uid: "u".to_owned(),
            group: Some("default".to_owned()),
            cause: losses::Cause::OomKilled,
            container: "worker".to_owned(),
            reason: "OOMKilled".to_owned(),
            exit_code: Some(137),
            memory_limit: Some("256Mi".to_owned()),
            message: None,
            time: crate::fixtures::time(1),
        }
    }

    /// One kill is one WorkerOOMKilled Warning of its own naming the pod, its end, its
    /// limit, its tasks and the fix; the OOM deletion adds no second Event; the note
    /// always fits the API server's 1 kB, however long the task keys.
    #[test]
    fn an_oom_kill_is_one_event_that_fits() {
        let long = "k".repeat(5000);
        let outcome = Outcome {
            deleted: vec![Deletion {
                name: "demo-default-worker-1".to_owned(),
                reason: DeleteReason::OomKilled,
                detail: "OOMKilled, exit code 137".to_owned(),
            }],
            running: BTreeMap::from([(
                "demo-default-worker-1".to_owned(),
                Running::Tasks {
                    keys: vec!["alloc-0".to_owned(), long.clone()],
                    total: 2,
                },
            )]),
            ..Outcome::default()
        };
        let status = ShoalClusterStatus::default();
        let losses = [kill("demo-default-worker-1")];
        let notes = notes(&Inputs {
            decisions: &[],
            groups: &[],
            losses: &losses,
            memory: &[],
            idle: Idle::Unknown,
            plan: &Plan::default(),
            outcome: &outcome,
            apply_error: None,
            version: "0.3.0",
            previous: Some(&status),
            status: &status,
        });
        assert_eq!(notes.len(), 1, "{notes:?}");
        let note = &notes[0];
        assert_eq!(
            (note.reason, note.warning, note.distinct),
            ("WorkerOOMKilled", true, true)
        );
        assert!(
            note.note.starts_with(
                "worker pod demo-default-worker-1 (group default) was OOM-killed: container \
                 worker OOMKilled, exit code 137, memory limit 256Mi; running 2 tasks: 'alloc-0', 'kkk"
            ),
            "{}",
            note.note
        );
        assert!(
            note.note
                .contains("Fix: raise spec.workers.resources.limits.memory")
        );
        assert!(note.note.len() <= MAX_NOTE);
        assert!(fit(long).len() <= MAX_NOTE);
    }

    /// oomPolicy's steps are Events: raised from -> to and why; at the maximum, a Warning
    /// that it can go no higher.
    #[test]
    fn memory_steps_are_events() {
        let raised = GroupMemory {
            group: "default".to_owned(),
            record: None,
            step: Some(Step::Raised {
                pod: "w-1".to_owned(),
                killed_at: 256 << 20,
                from: 256 << 20,
                to: 1 << 30,
                at_maximum: true,
            }),
        };
        let note = memory_note(&raised, "1Gi").unwrap_or_else(|| unreachable!());
        assert_eq!((note.reason, note.warning), ("MemoryLimitRaised", false));
        assert!(
            note.note.contains("raised from 256Mi to 1Gi")
                && note.note.contains("it can go no higher"),
            "{}",
            note.note
        );
        let capped = GroupMemory {
            step: Some(Step::AtMaximum {
                pod: "w-2".to_owned(),
                limit: 1 << 30,
            }),
            ..raised
        };
        let note = memory_note(&capped, "1Gi").unwrap_or_else(|| unreachable!());
        assert_eq!((note.reason, note.warning), ("MemoryLimitAtMaximum", true));
        assert!(note.note.contains("can go no higher"), "{}", note.note);
    }

    /// The idle warning is a Warning; the cull a Normal Event saying why.
    #[test]
    fn idle_events() {
        let warn = run(
            &[],
            &Outcome::default(),
            Idle::Warn {
                idle_seconds: 80.0,
                timeout: 100,
            },
        );
        assert!(warn[0].warning && warn[0].note.contains("after 100 s idle"));
        let cull = run(
            &[],
            &Outcome::default(),
            Idle::Cull {
                idle_seconds: 100.0,
                timeout: 100,
            },
        );
        assert_eq!((cull[0].reason, cull[0].warning), ("IdleTimeout", false));
    }
}
