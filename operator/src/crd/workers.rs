//! The worker-pool settings shared by a cluster's default group and every
//! `ShoalWorkerGroup`: counts with their bounds, autoscaling, cores and resources, and
//! the observed counts and autoscaler state. Types only; the decisions are in
//! `crate::reconcile::autoscale`.

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Worker pods of one group: how many, within which bounds, and what each gets.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas").reason(Reason::FieldValueInvalid).field_path(".minReplicas"))]
#[x_kube(validation = Rule::new("self.replicas >= self.minReplicas && self.replicas <= self.maxReplicas").message("replicas must lie between minReplicas and maxReplicas").reason(Reason::FieldValueInvalid).field_path(".replicas"))]
pub struct WorkerPoolSpec {
    /// Worker pods wanted now. `kubectl scale` sets this through the scale subresource.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 10000))]
    pub replicas: i32,
    /// Fewest worker pods the pool may be scaled to.
    #[serde(default)]
    #[schemars(range(min = 0, max = 10000))]
    pub min_replicas: i32,
    /// Most worker pods the pool may be scaled to.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 0, max = 10000))]
    pub max_replicas: i32,
    /// Tasks each worker runs at once (its executor processes). Defaults to the CPU limit,
    /// or 1 without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub cores: Option<i32>,
    /// CPU and memory requests and limits of each worker container. The worker's memory
    /// limit (spill, then kill the offending task) follows the container's memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra environment variables for each worker container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Node labels a worker pod must match (e.g. GPU nodes).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints worker pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Let the scheduler's estimate of the work set the number of worker pods, between
    /// `minReplicas` and `maxReplicas`. Off by default: then `replicas` is the count.
    #[serde(default)]
    pub autoscaling: AutoscalingSpec,
    /// Abstract resources each worker of the group offers, e.g. `highmem: 1` or `gpu: 1`.
    /// A task submitted with `resources={"highmem": 1}` runs only on workers offering at
    /// least that much. Names may not contain `=` or `,`; amounts must be positive.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub task_resources: BTreeMap<String, f64>,
}

/// How the operator scales a worker group from the scheduler's estimate of the work.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSpec {
    /// Scale the group from the scheduler's estimate. While off, `replicas` is the count
    /// (set it by hand, with `kubectl scale` or an HPA on the scale subresource); while on,
    /// the operator never writes `replicas` and ignores it.
    #[serde(default)]
    pub enabled: bool,
    /// Enough workers to finish the queued work within this many seconds.
    #[serde(default = "default_target_duration")]
    #[schemars(range(min = 1, max = 3600))]
    pub target_duration_seconds: i32,
    /// Scale down only to the highest target recommended within this many seconds, so a
    /// short lull does not remove workers that the next burst needs (no flapping).
    /// Scale-up is never delayed.
    #[serde(default = "default_stabilization")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: i32,
    /// Most worker pods added or removed in one decision. 0 (default): scale up at once to
    /// the target, scale down by at most a quarter of the current pods (at least 1).
    #[serde(default)]
    #[schemars(range(min = 0, max = 10000))]
    pub max_step: i32,
}

fn default_target_duration() -> i32 {
    5
}

fn default_stabilization() -> i32 {
    60
}

impl Default for AutoscalingSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            target_duration_seconds: default_target_duration(),
            scale_down_stabilization_seconds: default_stabilization(),
            max_step: 0,
        }
    }
}

fn default_replicas() -> i32 {
    2
}

fn default_max_replicas() -> i32 {
    100
}

impl Default for WorkerPoolSpec {
    fn default() -> Self {
        Self {
            replicas: default_replicas(),
            min_replicas: 0,
            max_replicas: default_max_replicas(),
            cores: None,
            resources: None,
            env: BTreeMap::new(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            autoscaling: AutoscalingSpec::default(),
            task_resources: BTreeMap::new(),
        }
    }
}

/// Observed worker counts of one group.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerGroupStatus {
    /// The group's name (`default` for the cluster's own workers).
    pub name: String,
    /// Worker pods wanted.
    pub desired: i32,
    /// Worker pods that exist and are not finished.
    pub current: i32,
    /// Worker pods whose container is ready.
    pub ready: i32,
    /// What the autoscaler decided last, and the recent targets it remembers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<AutoscalerStatus>,
}

/// The autoscaler's state for one group. Kept in status so the stabilization window
/// survives an operator restart.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerStatus {
    /// `Off`, `Stable`, `ScalingUp`, `ScalingDown` or `SchedulerUnreachable`.
    pub state: AutoscalerState,
    /// Worker pods the autoscaler wants now.
    pub target: i32,
    /// When the target last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
    /// Why the target is what it is (the scheduler's reason and the operator's bounds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reason: Option<String>,
    /// Recent recommended targets, oldest first, within the stabilization window. Only
    /// entries that can still be the window's highest are kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recommendations: Vec<Recommendation>,
}

/// One target the autoscaler recommended, and when.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// When it was recommended.
    pub time: Time,
    /// Worker pods recommended.
    pub target: i32,
}

/// What the autoscaler of a group is doing.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    JsonSchema,
    strum::Display,
    strum::IntoStaticStr,
)]
pub enum AutoscalerState {
    /// Autoscaling is off: `replicas` is the count. (Not `Off`: the API server reads an
    /// unquoted `Off` in the CRD's YAML as the boolean false.)
    #[default]
    Disabled,
    /// The group has as many pods as the target.
    Stable,
    /// Pods are being added to reach the target.
    ScalingUp,
    /// Workers are being retired to reach the target.
    ScalingDown,
    /// The scheduler cannot be asked: the target is kept, nothing is scaled down.
    SchedulerUnreachable,
}
