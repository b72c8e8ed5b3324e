//! Test-only builders of custom resources and observed pods (chainable, no client).

use crate::crd::{
    ShoalCluster, ShoalClusterSpec, ShoalWorkerGroup, ShoalWorkerGroupSpec, WorkerPoolSpec,
};
use crate::names;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, Pod,
    PodStatus, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use std::collections::BTreeMap;

pub fn defaults(version: &str) -> crate::reconcile::validate::Defaults {
    crate::reconcile::validate::Defaults {
        version: version.to_owned(),
        image: names::DEFAULT_IMAGE.to_owned(),
    }
}

pub fn time(seconds: i64) -> Time {
    Time(jiff::Timestamp::from_second(seconds).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
}

pub fn cluster(name: &str) -> ShoalCluster {
    let spec: ShoalClusterSpec = serde_json::from_str("{}").unwrap_or_else(|e| unreachable!("{e}"));
    let mut cluster = ShoalCluster::new(name, spec);
    cluster.metadata.namespace = Some("ns".to_owned());
    cluster.metadata.uid = Some(format!("uid-{name}"));
    cluster.metadata.generation = Some(1);
    cluster
}

pub fn worker_group(name: &str, cluster: &str) -> ShoalWorkerGroup {
    let mut group = ShoalWorkerGroup::new(
        name,
        ShoalWorkerGroupSpec {
            cluster: cluster.to_owned(),
            workers: WorkerPoolSpec::default(),
        },
    );
    group.metadata = ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some("ns".to_owned()),
        uid: Some(format!("uid-group-{name}")),
        generation: Some(1),
        ..ObjectMeta::default()
    };
    group
}

fn with_status(mut pod: Pod, phase: &str, status: ContainerStatus) -> Pod {
    pod.status = Some(PodStatus {
        phase: Some(phase.to_owned()),
        container_statuses: Some(vec![status]),
        ..PodStatus::default()
    });
    pod
}

fn container_status(image_id: &str, ready: bool, state: ContainerState) -> ContainerStatus {
    ContainerStatus {
        name: "main".to_owned(),
        image: "image".to_owned(),
        image_id: image_id.to_owned(),
        ready,
        restart_count: 0,
        state: Some(state),
        ..ContainerStatus::default()
    }
}

/// The pod's container runs `image_id` and is not ready yet.
pub fn running(pod: Pod, image_id: &str) -> Pod {
    let state = ContainerState {
        running: Some(ContainerStateRunning::default()),
        ..ContainerState::default()
    };
    with_status(pod, "Running", container_status(image_id, false, state))
}

/// The pod's container runs `image_id` and is ready.
pub fn ready(pod: Pod, image_id: &str) -> Pod {
    let state = ContainerState {
        running: Some(ContainerStateRunning::default()),
        ..ContainerState::default()
    };
    with_status(pod, "Running", container_status(image_id, true, state))
}

/// The pod's container ended with `reason` and `exit_code`.
pub fn finished(pod: Pod, reason: &str, exit_code: i32) -> Pod {
    let state = ContainerState {
        terminated: Some(ContainerStateTerminated {
            reason: Some(reason.to_owned()),
            exit_code,
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    };
    with_status(pod, "Failed", container_status("sha256:x", false, state))
}

/// The pod was evicted by the kubelet (its container stopped with an error).
pub fn evicted(pod: Pod) -> Pod {
    let mut pod = finished(pod, "Error", 137);
    if let Some(status) = pod.status.as_mut() {
        status.reason = Some("Evicted".to_owned());
        status.message = Some("The node was low on resource: memory.".to_owned());
    }
    pod
}

/// The pod's container was killed with `reason` at `finished_at` seconds and restarted
/// in place (as the scheduler's, with restart policy `Always`); it runs again, not ready.
pub fn restarted_after(pod: Pod, reason: &str, finished_at: i64) -> Pod {
    let mut pod = running(pod, "sha256:x");
    if let Some(container) = pod
        .status
        .as_mut()
        .and_then(|s| s.container_statuses.as_mut())
        .and_then(|c| c.first_mut())
    {
        container.restart_count = 1;
        container.last_state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                reason: Some(reason.to_owned()),
                exit_code: 137,
                finished_at: Some(time(finished_at)),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        });
    }
    pod
}

/// The pod with `uid`.
pub fn with_uid(mut pod: Pod, uid: &str) -> Pod {
    pod.metadata.uid = Some(uid.to_owned());
    pod
}

/// Resources with only a memory limit (and, when given, a memory request).
pub fn memory(limit: &str, request: Option<&str>) -> ResourceRequirements {
    let quantity = |q: &str| BTreeMap::from([("memory".to_owned(), Quantity(q.to_owned()))]);
    ResourceRequirements {
        limits: Some(quantity(limit)),
        requests: request.map(quantity),
        ..ResourceRequirements::default()
    }
}

/// The pod as created for another runtime version.
pub fn with_version(mut pod: Pod, version: &str) -> Pod {
    if let Some(labels) = pod.metadata.labels.as_mut() {
        labels.insert(names::LABEL_VERSION.to_owned(), version.to_owned());
    }
    pod
}
