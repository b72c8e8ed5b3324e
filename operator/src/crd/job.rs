//! `ShoalJob`: a batch run. A runner pod (the user's command) against a fresh
//! `ShoalCluster` built from an embedded template; the cluster goes when the runner ends.
//! Status and conditions follow a Kubernetes Job's. Types only; deciding is in
//! `crate::job`.

use super::cluster::{ImagePullPolicy, ShoalClusterSpec};
use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A batch run: a runner pod against a fresh Shoal cluster, cleaned up like a Job.
#[allow(
    clippy::duplicated_attributes,
    reason = "each printcolumn(...) has its own type_; clippy reads them as repeats"
)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "shoal.dev",
    version = "v1alpha1",
    kind = "ShoalJob",
    namespaced,
    status = "ShoalJobStatus",
    shortname = "shj",
    category = "shoal",
    doc = "A batch run: a runner pod (your command) against a fresh Shoal cluster built from a template; the cluster is deleted when the runner ends.",
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.phase",
        description = "Pending, Running, Succeeded or Failed"
    ),
    printcolumn(
        name = "Completions",
        type_ = "string",
        json_path = ".status.completions",
        description = "Runners succeeded of the one wanted"
    ),
    printcolumn(
        name = "Attempts",
        type_ = "integer",
        json_path = ".status.attempts",
        description = "Runner pods started"
    ),
    printcolumn(
        name = "Duration",
        type_ = "string",
        json_path = ".status.duration",
        description = "From start to completion (set when the job finishes)"
    ),
    printcolumn(
        name = "Exit",
        type_ = "integer",
        json_path = ".status.exitCode",
        description = "The last runner's exit code",
        priority = "1"
    ),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".status.clusterName",
        description = "The job's ShoalCluster",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.cluster == oldSelf.cluster && self.runner == oldSelf.runner && self.backoffLimit == oldSelf.backoffLimit && has(self.activeDeadlineSeconds) == has(oldSelf.activeDeadlineSeconds) && (!has(self.activeDeadlineSeconds) || self.activeDeadlineSeconds == oldSelf.activeDeadlineSeconds)").message("a ShoalJob's spec is immutable except ttlSecondsAfterFinished: delete the job and create a new one").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.cluster.clientLease)").message("cluster.clientLease does not apply to a ShoalJob: its cluster lives as long as the runner; remove it").reason(Reason::FieldValueForbidden).field_path(".cluster.clientLease"))]
pub struct ShoalJobSpec {
    /// The cluster the runner computes on: a `ShoalCluster` spec (`{}` for the defaults;
    /// no `clientLease`), created as `<job>-cluster`, owned by the job, deleted when the
    /// runner ends. Its version (default: the operator's) also picks the runner's default
    /// image.
    pub cluster: ShoalClusterSpec,
    /// The runner pod: your program, started once the cluster is Running, with
    /// `SHOAL_SCHEDULER_ADDRESS`, `SHOAL_TOKEN` and `SHOAL_CLUSTER` set (so
    /// `shoal.Client()` connects with no arguments).
    pub runner: RunnerSpec,
    /// Failed runner attempts retried before the job fails, 0 to 10. Default 0: the first
    /// failure fails the job (a script that failed usually fails again, and each retry
    /// reruns it from the start against the same cluster). Retries wait 10 s, doubling
    /// per failure, at most 6 min.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 10").message("backoffLimit must be between 0 and 10: the failed runner attempts retried before the job fails"))]
    pub backoff_limit: i32,
    /// Seconds from the job's start (including the cluster's start) after which a running
    /// runner is deleted and the job fails with `DeadlineExceeded`. Unset: no limit (a
    /// cluster that never starts then waits forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0 && self <= 31536000").message("activeDeadlineSeconds must be above 0 and at most 31536000 (a year)"))]
    pub active_deadline_seconds: Option<i64>,
    /// Seconds after the job finished (succeeded or failed) at which the job, and with it
    /// its runner pods, is deleted. Unset: kept until deleted by hand. The only field
    /// that may change after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 31536000").message("ttlSecondsAfterFinished must be between 0 and 31536000 (a year)"))]
    pub ttl_seconds_after_finished: Option<i64>,
}

/// The runner pod's container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("size(self.command) > 0").message("runner.command must name the program to run, e.g. [python3, /scripts/job.py]").reason(Reason::FieldValueRequired).field_path(".command"))]
pub struct RunnerSpec {
    /// The runner's image. Default: the cluster's runtime image at the cluster's version
    /// (`shoal.dev/shoal:<version>`, with python3, dask, numpy, pandas and `shoal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// When the kubelet pulls the runner's image. Default: the cluster's
    /// `imagePullPolicy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,
    /// The program and its first arguments (the container's `command`; not run through a
    /// shell). Must not be empty.
    #[schemars(length(max = 64))]
    pub command: Vec<String>,
    /// Further arguments (the container's `args`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub args: Vec<String>,
    /// Environment variables of the runner, after the ones the operator sets (a name
    /// given here wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    pub env: Vec<EnvVar>,
    /// CPU and memory requests and limits of the runner container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// What the operator observed and did, shaped like a Kubernetes Job's status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShoalJobStatus {
    /// `Pending` (cluster or runner starting), `Running`, `Succeeded` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<JobPhase>,
    /// `Complete` (reason `CompletionsReached`) or `Failed` (reason
    /// `BackoffLimitExceeded`, `DeadlineExceeded`, `ClusterFailed` or `ClusterNameTaken`),
    /// as a Job has them: `kubectl wait --for=condition=Complete` works.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the operator started the job (its deadline counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the job finished (succeeded or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// From start to completion, e.g. `2m13s` (set when the job finishes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Runners succeeded of the one wanted: `0/1` or `1/1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completions: Option<String>,
    /// Runner pods pending or running (0 or 1).
    #[serde(default)]
    pub active: i32,
    /// Runner pods that succeeded (0 or 1).
    #[serde(default)]
    pub succeeded: i32,
    /// Runner attempts that failed (a runner pod that vanished counts).
    #[serde(default)]
    pub failed: i32,
    /// Runner pods started so far (`<job>-runner-1`, `-2`, ...).
    #[serde(default)]
    pub attempts: i32,
    /// The name of the latest runner pod (`kubectl logs` it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_pod: Option<String>,
    /// The latest runner's exit code, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// What the job waits for, or how it ended (after a failure: the runner's last log
    /// lines, at most 4 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The job's `ShoalCluster` (`<job>-cluster`; deleted when the runner ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Where a job is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, strum::Display)]
pub enum JobPhase {
    /// The cluster is starting, or the runner pod is not running yet.
    Pending,
    /// The runner's container runs.
    Running,
    /// The runner exited with code 0.
    Succeeded,
    /// The runner failed more often than `backoffLimit` allows, ran past
    /// `activeDeadlineSeconds`, or the cluster could not be made.
    Failed,
}
