//! Pure: the job's cluster and runner pods as read from the API server, turned into what
//! the plan looks at (`ClusterSeen`, `RunnerSeen`). No client.

use super::plan::{ClusterSeen, Failure, RunnerSeen, RunnerState};
use crate::crd::ShoalCluster;
use crate::names;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};

/// Owned by `uid` as its controller.
pub fn controlled_by(
    owners: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
    uid: &str,
) -> bool {
    owners
        .into_iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// The cluster named like the job's, as the plan sees it: whether it is the job's
/// (`job_uid` controls it), its phase, and the messages of its conditions that are not
/// met (why it is not Running, or why its spec was refused).
pub fn cluster(cluster: &ShoalCluster, job_uid: &str) -> ClusterSeen {
    let status = cluster.status.as_ref();
    let unmet: Vec<&str> = status
        .into_iter()
        .flat_map(|s| s.conditions.iter())
        .filter(|c| {
            ["Valid", "Applied", "SchedulerReady", "WorkersReady"].contains(&c.type_.as_str())
                && c.status == "False"
        })
        .map(|c| c.message.as_str())
        .filter(|m| !m.is_empty())
        .collect();
    ClusterSeen {
        uid: cluster.metadata.uid.clone(),
        ours: controlled_by(cluster.metadata.owner_references.as_ref(), job_uid),
        deleting: cluster.metadata.deletion_timestamp.is_some(),
        phase: status.and_then(|s| s.phase),
        message: (!unmet.is_empty()).then(|| unmet.join("; ")),
    }
}

fn terminated(pod: &Pod) -> Option<&ContainerStateTerminated> {
    let container = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
    container.state.as_ref()?.terminated.as_ref()
}

/// A runner pod as the plan sees it; `None` for a pod without an attempt label (not a
/// runner this operator made).
pub fn runner(pod: &Pod) -> Option<RunnerSeen> {
    let attempt: i32 = pod
        .metadata
        .labels
        .as_ref()?
        .get(names::LABEL_JOB_ATTEMPT)?
        .parse()
        .ok()?;
    let status = pod.status.as_ref();
    let ended = terminated(pod);
    let finished_at = ended.and_then(|t| t.finished_at.as_ref()).map(|t| t.0);
    let state = if pod.metadata.deletion_timestamp.is_some() {
        RunnerState::Terminating
    } else {
        match status.and_then(|s| s.phase.as_deref()) {
            Some("Succeeded") => RunnerState::Succeeded { finished_at },
            Some("Failed") => {
                let pod_reason = status.and_then(|s| s.reason.clone());
                let message = status
                    .and_then(|s| s.message.clone())
                    .or_else(|| ended.and_then(|t| t.message.clone()))
                    .map(|m| m.trim().to_owned())
                    .filter(|m| !m.is_empty());
                RunnerState::Failed(Failure {
                    exit_code: ended.map(|t| t.exit_code),
                    reason: pod_reason
                        .or_else(|| ended.and_then(|t| t.reason.clone()))
                        .unwrap_or_else(|| "Unknown".to_owned()),
                    message,
                    finished_at,
                })
            }
            Some("Running") => RunnerState::Running,
            _ => RunnerState::Pending {
                why: status
                    .and_then(|s| s.container_statuses.as_ref())
                    .and_then(|c| c.first())
                    .and_then(|c| c.state.as_ref()?.waiting.as_ref())
                    .and_then(|w| {
                        let reason = w.reason.clone()?;
                        Some(match w.message.as_deref() {
                            Some(message) if !message.is_empty() => format!("{reason}: {message}"),
                            _ => reason,
                        })
                    }),
            },
        }
    };
    Some(RunnerSeen {
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone(),
        attempt,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::fixtures::t;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateWaiting, ContainerStatus, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::collections::BTreeMap;

    fn pod(phase: &str, state: ContainerState) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some("nightly-runner-2".to_owned());
        pod.metadata.labels = Some(BTreeMap::from([(
            names::LABEL_JOB_ATTEMPT.to_owned(),
            "2".to_owned(),
        )]));
        pod.status = Some(PodStatus {
            phase: Some(phase.to_owned()),
            container_statuses: Some(vec![ContainerStatus {
                name: "runner".to_owned(),
                state: Some(state),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        });
        pod
    }

    /// A failed runner gives its exit code, reason and end; a waiting one its reason.
    #[test]
    fn runner_states_come_from_the_pod() {
        let ended = ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 3,
                reason: Some("Error".to_owned()),
                finished_at: Some(Time(t(50))),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        };
        let seen = runner(&pod("Failed", ended.clone()));
        assert_eq!(
            seen.map(|r| (r.attempt, r.state)),
            Some((
                2,
                RunnerState::Failed(Failure {
                    exit_code: Some(3),
                    reason: "Error".to_owned(),
                    message: None,
                    finished_at: Some(t(50)),
                })
            ))
        );
        assert_eq!(
            runner(&pod("Succeeded", ended)).map(|r| r.state),
            Some(RunnerState::Succeeded {
                finished_at: Some(t(50))
            })
        );
        let waiting = ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("ErrImageNeverPull".to_owned()),
                message: Some("image not present".to_owned()),
            }),
            ..ContainerState::default()
        };
        assert_eq!(
            runner(&pod("Pending", waiting)).map(|r| r.state),
            Some(RunnerState::Pending {
                why: Some("ErrImageNeverPull: image not present".to_owned())
            })
        );
        let mut stranger = pod("Running", ContainerState::default());
        stranger.metadata.labels = None;
        assert_eq!(runner(&stranger), None);
    }
}
