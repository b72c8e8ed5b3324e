//! Test-only builders of custom resources and observed pods (chainable, no client).

use crate::crd::{
    ShoalCluster, ShoalClusterSpec, ShoalWorkerGroup, ShoalWorkerGroupSpec, WorkerPoolSpec,
};
use crate::names;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, Pod,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

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

/// The pod as created for another runtime version.
pub fn with_version(mut pod: Pod, version: &str) -> Pod {
    if let Some(labels) = pod.metadata.labels.as_mut() {
        labels.insert(names::LABEL_VERSION.to_owned(), version.to_owned());
    }
    pod
}
