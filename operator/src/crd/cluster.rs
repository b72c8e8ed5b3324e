//! `ShoalCluster`: one scheduler pod, its Service and auth token, and a default pool of
//! worker pods, all on one pinned runtime version. Types only; reconciling is in
//! `crate::reconcile`.

use super::workers::{OomKills, WorkerGroupStatus, WorkerPoolSpec};
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Shoal cluster: a scheduler and elastic workers running one pinned runtime version.
#[allow(
    clippy::duplicated_attributes,
    reason = "each printcolumn(...) has its own type_; clippy reads them as repeats"
)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "shoal.dev",
    version = "v1alpha1",
    kind = "ShoalCluster",
    namespaced,
    status = "ShoalClusterStatus",
    shortname = "shc",
    category = "shoal",
    doc = "A Shoal cluster: one scheduler pod and elastic worker pods on one pinned runtime version.",
    scale(
        spec_replicas_path = ".spec.workers.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Where the cluster is in its life"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.version",
        description = "The runtime version the cluster is pinned to"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyWorkers",
        description = "Worker pods ready, all groups"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".status.desiredWorkers",
        description = "Worker pods wanted, all groups"
    ),
    printcolumn(
        name = "Autoscaler",
        type_ = "string",
        json_path = ".status.workerGroups[0].autoscaler.state",
        description = "The default worker group's autoscaler state"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(oldSelf.tokenSecret) || (has(self.tokenSecret) && self.tokenSecret == oldSelf.tokenSecret)").message("tokenSecret is immutable: workers and clients hold the token; create a new cluster to change it").reason(Reason::FieldValueForbidden).field_path(".tokenSecret"))]
pub struct ShoalClusterSpec {
    /// Runtime version (e.g. `0.1.0`): picks the image tag of the scheduler and every worker.
    /// Defaults to the operator's own version; never `latest`. Changing it on a live cluster
    /// follows `upgradeStrategy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$"))]
    pub version: Option<String>,
    /// Image repository, without a tag (default `shoal.dev/shoal`). The tag is always the
    /// version; once the scheduler runs, workers start from the exact digest it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^:@\s]+(:[0-9]+)?(/[^:@\s]+)*$"))]
    pub image: Option<String>,
    /// When the kubelet pulls the image: `IfNotPresent` (default), `Always` or `Never`.
    #[serde(default)]
    pub image_pull_policy: ImagePullPolicy,
    /// How a change of `version` reaches a running cluster.
    #[serde(default)]
    pub upgrade_strategy: UpgradeStrategy,
    /// The scheduler pod.
    #[serde(default)]
    pub scheduler: SchedulerSpec,
    /// The cluster's default worker group (`ShoalWorkerGroup` objects add more).
    #[serde(default)]
    pub workers: WorkerPoolSpec,
    /// Name of an existing Secret (key `token`) holding the cluster's auth token. Without it
    /// the operator creates `<cluster>-token` with a random token. Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub token_secret: Option<String>,
    /// Delete the cluster (and, through owner references, everything it owns) after this
    /// many seconds with no connected client and no unfinished work. Off when unset. A
    /// Warning Event is sent at 80% of the time; a cluster whose scheduler cannot be asked
    /// is never deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 31536000))]
    pub idle_timeout: Option<i64>,
    /// Delete the cluster when the client that created it goes away. The client
    /// (`shoal.KubeCluster`) renews the `coordination.k8s.io` Lease `<cluster>-client` in the
    /// cluster's namespace every `durationSeconds / 3`; when it was not renewed for
    /// `durationSeconds` (or does not exist `durationSeconds` after the cluster was created)
    /// the operator deletes the cluster with a `LeaseExpired` Warning Event. Unset (or set
    /// to null): the cluster lives without a client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_lease: Option<ClientLease>,
}

/// The client lease of a cluster (`spec.clientLease`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientLease {
    /// Seconds after the Lease's last `renewTime` (or after the cluster's creation, while
    /// the Lease does not exist) at which the cluster is deleted. The Lease's own
    /// `leaseDurationSeconds` is informative; this value decides.
    #[schemars(range(min = 15, max = 3600))]
    pub duration_seconds: i64,
}

/// When the kubelet pulls the runtime image.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ImagePullPolicy {
    /// Pull only when the node does not have the image.
    #[default]
    IfNotPresent,
    /// Pull on every pod start (the digest still pins workers to the scheduler's image).
    Always,
    /// Never pull: the image must already be on the node.
    Never,
}

impl ImagePullPolicy {
    /// The value of a container's `imagePullPolicy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IfNotPresent => "IfNotPresent",
            Self::Always => "Always",
            Self::Never => "Never",
        }
    }
}

/// How a change of `spec.version` reaches a running cluster.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum UpgradeStrategy {
    /// Delete the scheduler and every worker, then start them all on the new version.
    /// Running work is lost; versions never mix.
    #[default]
    Recreate,
}

/// The scheduler pod's settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulerSpec {
    /// CPU and memory requests and limits of the scheduler container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Seconds without a heartbeat after which the scheduler declares a worker lost.
    #[serde(default = "default_heartbeat_timeout")]
    #[schemars(range(min = 2, max = 3600))]
    pub heartbeat_timeout_seconds: i32,
}

fn default_heartbeat_timeout() -> i32 {
    30
}

impl Default for SchedulerSpec {
    fn default() -> Self {
        Self {
            resources: None,
            heartbeat_timeout_seconds: default_heartbeat_timeout(),
        }
    }
}

/// What the operator observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShoalClusterStatus {
    /// `Pending`, `Running`, `Upgrading`, `Degraded` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The runtime version the cluster runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The image the scheduler actually runs, by digest; later workers start from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// Address clients connect to (`host:port` of the scheduler Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_address: Option<String>,
    /// The scheduler's dashboard page inside the cluster (it asks for the cluster's token once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_url: Option<String>,
    /// Name of the Secret holding the auth token (key `token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<String>,
    /// Worker pods of the default group that exist (for the scale subresource).
    #[serde(default)]
    pub replicas: i32,
    /// Label selector of the default group's worker pods (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Worker pods ready, all groups.
    #[serde(default)]
    pub ready_workers: i32,
    /// Worker pods wanted, all groups.
    #[serde(default)]
    pub desired_workers: i32,
    /// Counts per worker group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worker_groups: Vec<WorkerGroupStatus>,
    /// What happened to the scheduler pod (OOM kills).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<SchedulerStatus>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the idle-timeout warning was sent for the current idle period (cleared when
    /// the cluster is busy again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_warned_at: Option<Time>,
    /// The client lease as last seen (only with `spec.clientLease`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_lease: Option<ClientLeaseStatus>,
    /// `Ready`, `SchedulerReady`, `WorkersReady`, `VersionSkew`, `Valid`, `Applied`,
    /// `WorkersOOMKilled`, `SchedulerOOMKilled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The client lease as the operator last saw it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientLeaseStatus {
    /// The Lease's `holderIdentity` (the client, e.g. `host/pid`); unset while the Lease
    /// does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// The Lease's last `renewTime` seen; unset while the Lease does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<Time>,
    /// When the cluster is deleted unless the Lease is renewed before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
}

/// The scheduler pod's record.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulerStatus {
    /// The scheduler container's OOM kills (the kubelet restarts it; running work is lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_kills: Option<OomKills>,
}

/// Where a cluster is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, strum::Display)]
pub enum Phase {
    /// Pods are being created or are not ready yet.
    Pending,
    /// The scheduler and every wanted worker are ready.
    Running,
    /// A version change is being rolled out.
    Upgrading,
    /// The scheduler runs but workers are on another version, or applying an object
    /// failed (see the `Applied` condition).
    Degraded,
    /// The spec cannot be reconciled (see the `Valid` condition).
    Failed,
}
