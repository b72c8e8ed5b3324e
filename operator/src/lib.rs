//! The Shoal operator: `ShoalCluster` and `ShoalWorkerGroup` resources into pinned scheduler
//! and worker pods, and `ShoalJob`s into a runner pod against a fresh cluster. `crd` holds
//! the types, `reconcile` the cluster's stages, `job` the job's, `controller` the wiring;
//! `leader`, `metrics` and `http` are the operator's own runtime.

pub mod controller;
pub mod crd;
pub mod http;
pub mod job;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod reconcile;
pub mod scheduler_api;

#[cfg(test)]
mod fixtures;

/// The operator's version, which is also the runtime version clusters get by default.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
