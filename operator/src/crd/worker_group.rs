//! `ShoalWorkerGroup`: an extra pool of workers (e.g. GPU or high-memory nodes) attached to
//! one `ShoalCluster`, on the cluster's pinned version. Types only.

use super::workers::{WorkerGroupStatus, WorkerPoolSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// An extra group of worker pods attached to a `ShoalCluster` in the same namespace.
#[allow(
    clippy::duplicated_attributes,
    reason = "each printcolumn(...) has its own type_; clippy reads them as repeats"
)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "shoal.dev",
    version = "v1alpha1",
    kind = "ShoalWorkerGroup",
    namespaced,
    status = "ShoalWorkerGroupStatus",
    shortname = "shwg",
    category = "shoal",
    doc = "An extra group of Shoal worker pods (e.g. GPU or high-memory) attached to a ShoalCluster.",
    scale(
        spec_replicas_path = ".spec.workers.replicas",
        status_replicas_path = ".status.workers.current",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".spec.cluster",
        description = "The ShoalCluster the workers join"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.workers.ready",
        description = "Worker pods ready"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".status.workers.desired",
        description = "Worker pods wanted"
    ),
    printcolumn(
        name = "Autoscaler",
        type_ = "string",
        json_path = ".status.workers.autoscaler.state",
        description = "The group's autoscaler state"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.cluster == oldSelf.cluster").message("cluster is immutable: a worker group cannot move to another cluster; delete it and create a new one").reason(Reason::FieldValueForbidden).field_path(".cluster"))]
pub struct ShoalWorkerGroupSpec {
    /// Name of the `ShoalCluster` (same namespace) these workers join. Immutable.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub cluster: String,
    /// The group's worker pods.
    #[serde(default)]
    pub workers: WorkerPoolSpec,
}

/// What the operator observed for this group.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShoalWorkerGroupStatus {
    /// The group's worker counts.
    #[serde(default)]
    pub workers: WorkerGroupStatus,
    /// Label selector of the group's worker pods (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Attached` (the cluster exists and is valid), `Ready` and `WorkersOOMKilled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
