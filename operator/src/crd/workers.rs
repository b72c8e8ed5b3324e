//! The worker-pool settings shared by a cluster's default group and every
//! `ShoalWorkerGroup`: counts with their bounds, autoscaling, cores and resources, memory
//! thresholds and the OOM policy, and the observed counts, autoscaler state and OOM
//! record. Types only; the decisions are in `crate::reconcile::autoscale` and
//! `crate::reconcile::losses`.

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
    /// When the worker acts on its memory, as fractions of the container's memory limit
    /// (the worker measures its pod's cgroup working set). Unset steps keep the worker's
    /// defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_thresholds: Option<MemoryThresholds>,
    /// Raise the memory limit of new worker pods of the group each time one is
    /// OOM-killed, up to a maximum. Off when unset: replacements get the same limit.
    /// Running pods keep their limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_policy: Option<OomPolicy>,
}

/// The worker's memory steps, as fractions of its container's memory limit. 0 disables a
/// step; the steps that are not 0 must increase: target <= spill <= pause <= terminate.
/// Passed to the worker as `SHOAL_MEMORY_TARGET`, `SHOAL_MEMORY_SPILL`,
/// `SHOAL_MEMORY_PAUSE` and `SHOAL_MEMORY_TERMINATE`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[[has(self.target) ? self.target : 0.0, has(self.spill) ? self.spill : 0.0], [has(self.target) ? self.target : 0.0, has(self.pause) ? self.pause : 0.0], [has(self.target) ? self.target : 0.0, has(self.terminate) ? self.terminate : 0.0], [has(self.spill) ? self.spill : 0.0, has(self.pause) ? self.pause : 0.0], [has(self.spill) ? self.spill : 0.0, has(self.terminate) ? self.terminate : 0.0], [has(self.pause) ? self.pause : 0.0, has(self.terminate) ? self.terminate : 0.0]].all(p, p[0] == 0.0 || p[1] == 0.0 || p[0] <= p[1])").message("memoryThresholds must increase: target <= spill <= pause <= terminate (a step set to 0 is off and not compared)").reason(Reason::FieldValueInvalid))]
pub struct MemoryThresholds {
    /// Stored results beyond this fraction of the memory limit spill to disk (e.g. 0.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub target: Option<f64>,
    /// When the pod's measured memory (its cgroup working set) passes this fraction,
    /// stored results spill to disk until it is below `target` again (e.g. 0.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub spill: Option<f64>,
    /// Above this fraction the worker takes no new tasks (it finishes what it runs) until
    /// its memory is below it again (e.g. 0.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub pause: Option<f64>,
    /// Above this fraction the executor running the task that drives memory up is
    /// stopped and that task fails with `MemoryLimit`, before the kernel OOM-kills the
    /// whole pod (e.g. 0.95).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub terminate: Option<f64>,
}

/// How the memory limit of a group's new worker pods grows after OOM kills.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.increaseFactor > 1.0 && self.increaseFactor <= 10.0").message("oomPolicy.increaseFactor must be above 1 and at most 10 (e.g. 1.5: each OOM kill raises the limit of new pods by half)").reason(Reason::FieldValueInvalid).field_path(".increaseFactor"))]
#[x_kube(validation = Rule::new("isQuantity(self.maxMemory) && quantity(self.maxMemory).isGreaterThan(quantity('0'))").message("oomPolicy.maxMemory must be a positive memory quantity such as 4Gi").reason(Reason::FieldValueInvalid).field_path(".maxMemory"))]
pub struct OomPolicy {
    /// After an OOM kill, new pods of the group get the killed pod's memory limit times
    /// this factor (above 1, at most 10; default 1.5). The request is kept (never above
    /// the limit).
    #[serde(default = "default_increase_factor")]
    #[schemars(range(max = 10.0))]
    pub increase_factor: f64,
    /// The memory limit never goes above this quantity (e.g. `4Gi`); at it, an Event says
    /// it can go no higher. Not below the group's own memory limit.
    #[schemars(length(min = 1, max = 64))]
    pub max_memory: String,
}

fn default_increase_factor() -> f64 {
    1.5
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
            memory_thresholds: None,
            oom_policy: None,
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
    /// The group's worker pods killed by the kernel at their memory limit (OOMKilled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_kills: Option<OomKills>,
    /// The memory limit new worker pods of the group get after `oomPolicy` raised it.
    /// Unset: the spec's limit. Kept in status so it survives an operator restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raised_memory_limit: Option<RaisedMemoryLimit>,
}

/// OOM kills of one group's workers (or of the scheduler): how many, and the last few.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OomKills {
    /// OOM kills seen since the cluster was created.
    pub total: i64,
    /// The last kills, oldest first (at most 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub recent: Vec<OomKill>,
}

/// One pod killed for memory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OomKill {
    /// The pod's name (a worker's name is its pod's).
    pub pod: String,
    /// The pod's uid: each kill is reported once.
    #[serde(rename = "podUID")]
    pub pod_uid: String,
    /// When the container was killed (the kubelet's time, else when it was seen).
    pub time: Time,
    /// The container's memory limit when it was killed (e.g. `256Mi`); unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
    /// Keys of tasks it was running, as the scheduler answered (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<String>,
    /// How many tasks it was running; unset when the scheduler could not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_tasks: Option<u32>,
}

/// The memory limit `oomPolicy` gave a group's new worker pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RaisedMemoryLimit {
    /// The memory limit of new worker pods (e.g. `384Mi`).
    pub limit: String,
    /// The spec's memory limit it was raised from. A change of the spec's limit starts
    /// over from the new one.
    pub spec_limit: String,
    /// When it was last raised.
    pub last_raise_time: Time,
    /// True once it reached `oomPolicy.maxMemory`: it can go no higher.
    #[serde(default)]
    pub at_maximum: bool,
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
