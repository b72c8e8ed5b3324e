//! Pure reading of observed pods: which group and index a pod is, whether it runs, is
//! ready, died (and why, with the container's terminated state and memory limit), and
//! which image it really runs. No client.

use crate::names;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// What a pod is doing, as far as the operator cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// Being deleted; it no longer counts and its name is not free yet.
    Terminating,
    /// Not running yet (scheduling, pulling, starting).
    Pending,
    /// Its container runs; `ready` once the readiness probe passes.
    Running { ready: bool },
    /// Its container ended. `reason` is the kubelet's (e.g. `OOMKilled`, `Error`).
    Finished {
        reason: String,
        exit_code: Option<i32>,
    },
}

pub fn state(pod: &Pod) -> PodState {
    if pod.metadata.deletion_timestamp.is_some() {
        return PodState::Terminating;
    }
    let status = pod.status.as_ref();
    let container = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first());
    let terminated = container.and_then(|c| {
        c.state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .or_else(|| c.last_state.as_ref().and_then(|s| s.terminated.as_ref()))
    });
    match status.and_then(|s| s.phase.as_deref()) {
        Some("Running") => PodState::Running {
            ready: container.is_some_and(|c| c.ready),
        },
        Some("Failed") | Some("Succeeded") => {
            let container_reason = terminated.and_then(|t| t.reason.clone());
            // A pod the kubelet removed (e.g. `Evicted`) says so itself; its container's
            // reason is then only how it was stopped. An OOM kill stays an OOM kill.
            let reason = match (container_reason, pod_reason(pod)) {
                (Some(oom), _) if oom == OOM_KILLED => oom,
                (_, Some(removed)) => removed.to_owned(),
                (Some(reason), None) => reason,
                (None, None) => "Unknown".to_owned(),
            };
            PodState::Finished {
                reason,
                exit_code: terminated.map(|t| t.exit_code),
            }
        }
        _ => PodState::Pending,
    }
}

/// The kubelet's reason for a container the kernel killed at its memory limit.
pub const OOM_KILLED: &str = "OOMKilled";

/// The pod's own reason, set when the kubelet removed it (`Evicted`, `Shutdown`, ...).
pub fn pod_reason(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.reason.as_deref()
}

/// The pod's own message (e.g. why it was evicted).
pub fn pod_message(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.message.as_deref()
}

pub fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

fn container_status(pod: &Pod) -> Option<&ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.first()
}

/// How the pod's container last ended, as the kubelet reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    pub container: String,
    /// The kubelet's reason (`OOMKilled`, `Error`, `Completed`, ...).
    pub reason: String,
    pub exit_code: i32,
    pub finished_at: Option<Time>,
}

fn termination_of(container: &ContainerStatus, t: &ContainerStateTerminated) -> Termination {
    Termination {
        container: container.name.clone(),
        reason: t.reason.clone().unwrap_or_else(|| "Unknown".to_owned()),
        exit_code: t.exit_code,
        finished_at: t.finished_at.clone(),
    }
}

/// The container's current terminated state, else its last one (a container the kubelet
/// restarted in place, as the scheduler's, keeps its previous end there).
pub fn termination(pod: &Pod) -> Option<Termination> {
    let container = container_status(pod)?;
    let current = container.state.as_ref().and_then(|s| s.terminated.as_ref());
    let last = container
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref());
    current.or(last).map(|t| termination_of(container, t))
}

/// The memory limit of the pod's container, as its spec says (e.g. `256Mi`).
pub fn memory_limit(pod: &Pod) -> Option<&Quantity> {
    pod.spec
        .as_ref()?
        .containers
        .first()?
        .resources
        .as_ref()?
        .limits
        .as_ref()?
        .get("memory")
}

pub fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

pub fn is_scheduler(pod: &Pod) -> bool {
    label(pod, names::LABEL_COMPONENT) == Some(names::COMPONENT_SCHEDULER)
}

/// A scheduler pod of `version` is among `pods` and ready (it can be asked).
pub fn scheduler_ready(pods: &[Pod], version: &str) -> bool {
    pods.iter().any(|p| {
        is_scheduler(p)
            && version_label(p) == Some(version)
            && state(p) == PodState::Running { ready: true }
    })
}

/// A worker pod's group and index, from its labels.
pub fn worker_slot(pod: &Pod) -> Option<(&str, i32)> {
    if label(pod, names::LABEL_COMPONENT) != Some(names::COMPONENT_WORKER) {
        return None;
    }
    let group = label(pod, names::LABEL_GROUP)?;
    let index = label(pod, names::LABEL_INDEX)?.parse().ok()?;
    Some((group, index))
}

/// The version the pod was created for (its label).
pub fn version_label(pod: &Pod) -> Option<&str> {
    label(pod, names::LABEL_VERSION)
}

/// The image the pod's spec asks for.
pub fn spec_image(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.containers.first()?.image.as_deref()
}

/// The image the container runs, as the kubelet reports it (by digest), if it started.
pub fn running_image_id(pod: &Pod) -> Option<&str> {
    let id = pod
        .status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .image_id
        .as_str();
    (!id.is_empty()).then_some(id)
}

/// A pullable reference for a reported image id: `repo@sha256:...` (a registry digest).
/// A bare `sha256:...` (an image loaded without a registry) names no repository digest
/// a pod could start from: `None`, and the tag is used while skew checks compare ids.
pub fn image_from_id(image_id: &str) -> Option<String> {
    let id = image_id
        .strip_prefix("docker-pullable://")
        .unwrap_or(image_id);
    id.contains('@').then(|| id.to_owned())
}

/// The version an image reference names by its tag, if it has one.
pub fn version_of_image(image: &str) -> Option<&str> {
    let last = image.rsplit('/').next()?;
    if last.contains('@') {
        return None;
    }
    last.split_once(':').map(|(_, tag)| tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Image ids become pullable references; tags give versions, digests do not.
    #[test]
    fn images_and_versions() {
        assert_eq!(image_from_id("sha256:ab"), None);
        assert_eq!(
            image_from_id("docker-pullable://x/y@sha256:ab").as_deref(),
            Some("x/y@sha256:ab")
        );
        assert_eq!(version_of_image("host:5000/a/shoal:0.2.0"), Some("0.2.0"));
        assert_eq!(version_of_image("a/shoal@sha256:ab"), None);
        assert_eq!(version_of_image("host:5000/a/shoal"), None);
    }

    /// An evicted pod is finished for its pod-level reason; an OOM kill stays an OOM kill.
    #[test]
    fn eviction_is_named_by_the_pod_and_oom_by_the_container() {
        use crate::fixtures::{evicted, finished};
        let pod = Pod::default();
        let state = |p: &Pod| match self::state(p) {
            PodState::Finished { reason, .. } => reason,
            other => format!("{other:?}"),
        };
        assert_eq!(state(&evicted(pod.clone())), "Evicted");
        let mut oom = finished(pod, OOM_KILLED, 137);
        if let Some(status) = oom.status.as_mut() {
            status.reason = Some("Evicted".to_owned());
        }
        assert_eq!(state(&oom), OOM_KILLED);
    }
}
