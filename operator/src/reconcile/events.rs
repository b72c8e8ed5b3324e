//! Pure: the Events one reconcile publishes, built as data from what was decided
//! (scale decisions, idle verdict), planned and done (the apply `Outcome`), and how the
//! status changed. Publishing them is the caller's one place; no client here.

use super::apply::Outcome;
use super::autoscale::{Decision, Direction};
use super::idle::Idle;
use super::plan::{DeleteReason, Plan};
use crate::crd::ShoalClusterStatus;

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
    pub idle: Idle,
    pub plan: &'a Plan,
    pub outcome: &'a Outcome,
    /// A failed apply, described (object and the API's message).
    pub apply_error: Option<&'a str>,
    pub version: &'a str,
    pub previous: Option<&'a ShoalClusterStatus>,
    pub status: &'a ShoalClusterStatus,
}

/// The Events, in the order things happened.
pub fn notes(inputs: &Inputs<'_>) -> Vec<Note> {
    let mut out = Vec::new();
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
        let note = match deletion.reason {
            DeleteReason::Retired => format!("deleted retired worker pod {}", deletion.name),
            _ => format!("deleted pod {}{detail}", deletion.name),
        };
        let event = match deletion.reason {
            DeleteReason::OomKilled | DeleteReason::Died => warning(reason, "DeletePod", note),
            _ => normal(reason, "DeletePod", note),
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
