//! The worker-pool settings shared by a cluster's default group and every
//! `ShoalWorkerGroup`: counts with their bounds, cores and resources. Types only.

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use kube::KubeSchema;
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
}
