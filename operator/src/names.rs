//! Names, labels and ports of the objects the operator creates for a cluster or a job. One
//! place, so builders, selectors and tests agree. No logic beyond formatting.

use std::collections::BTreeMap;

/// Field manager for server-side apply and the Events reporter.
pub const MANAGER: &str = "shoal-operator";
/// The default image repository (the tag is always the runtime version).
pub const DEFAULT_IMAGE: &str = "shoal.dev/shoal";
/// The cluster's own worker group.
pub const DEFAULT_GROUP: &str = "default";
/// Key of the auth token in its Secret.
pub const TOKEN_KEY: &str = "token";

/// Scheduler gRPC port (clients and workers).
pub const SCHEDULER_PORT: i32 = 8786;
/// Scheduler HTTP port: dashboard, `/metrics`, `/healthz`, `/readyz`.
pub const DASHBOARD_PORT: i32 = 8787;
/// Worker HTTP port: `/metrics`, `/healthz`.
pub const WORKER_METRICS_PORT: i32 = 8788;
/// Worker data-plane port (peers fetch results here).
pub const WORKER_DATA_PORT: i32 = 8789;
/// The runtime image's non-root user.
pub const RUNTIME_UID: i64 = 10001;

pub const LABEL_CLUSTER: &str = "shoal.dev/cluster";
pub const LABEL_GROUP: &str = "shoal.dev/group";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_VERSION: &str = "app.kubernetes.io/version";
pub const LABEL_INDEX: &str = "shoal.dev/worker-index";

pub const COMPONENT_SCHEDULER: &str = "scheduler";
pub const COMPONENT_WORKER: &str = "worker";

pub fn scheduler_pod(cluster: &str) -> String {
    format!("{cluster}-scheduler")
}

pub fn scheduler_service(cluster: &str) -> String {
    format!("{cluster}-scheduler")
}

pub fn token_secret(cluster: &str) -> String {
    format!("{cluster}-token")
}

/// The Lease the cluster's client renews (`spec.clientLease`).
pub fn client_lease(cluster: &str) -> String {
    format!("{cluster}-client")
}

/// The NetworkPolicy guarding the scheduler's gRPC port.
pub fn scheduler_network_policy(cluster: &str) -> String {
    format!("{cluster}-scheduler")
}

/// Prefix of the client label: pods labelled `client.shoal.dev/<cluster>: "true"` may
/// reach the cluster's scheduler through its NetworkPolicy.
pub const CLIENT_LABEL_PREFIX: &str = "client.shoal.dev/";

/// The client label key of a cluster (its value is `"true"`).
pub fn client_label(cluster: &str) -> String {
    format!("{CLIENT_LABEL_PREFIX}{cluster}")
}

pub fn worker_pod(cluster: &str, group: &str, index: i32) -> String {
    format!("{cluster}-{group}-worker-{index}")
}

/// Labels every object of a cluster carries.
pub fn cluster_labels(cluster: &str, component: &str, version: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "shoal".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), cluster.to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGER.to_owned(),
        ),
        (LABEL_COMPONENT.to_owned(), component.to_owned()),
        (LABEL_VERSION.to_owned(), version.to_owned()),
        (LABEL_CLUSTER.to_owned(), cluster.to_owned()),
    ])
}

/// The selector of every pod of a cluster (used to list them).
pub fn cluster_selector(cluster: &str) -> String {
    format!("{LABEL_CLUSTER}={cluster}")
}

/// The selector of one worker group's pods (the scale subresource's `selector`).
pub fn group_selector(cluster: &str, group: &str) -> String {
    format!("{LABEL_CLUSTER}={cluster},{LABEL_COMPONENT}={COMPONENT_WORKER},{LABEL_GROUP}={group}")
}

/// The job a ShoalJob's cluster and runner pods belong to (value: the job's name).
pub const LABEL_JOB: &str = "shoal.dev/job";
/// A runner pod's attempt number (1, 2, ...).
pub const LABEL_JOB_ATTEMPT: &str = "shoal.dev/job-attempt";
pub const COMPONENT_RUNNER: &str = "runner";

/// The ShoalCluster a ShoalJob creates.
pub fn job_cluster(job: &str) -> String {
    format!("{job}-cluster")
}

/// Runner pod `attempt` (1, 2, ...) of a ShoalJob.
pub fn job_runner_pod(job: &str, attempt: i32) -> String {
    format!("{job}-runner-{attempt}")
}

/// The selector of a job's runner pods.
pub fn job_selector(job: &str) -> String {
    format!("{LABEL_JOB}={job}")
}
