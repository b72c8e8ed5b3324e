//! Worker settings (from the CLI or a test).

use std::path::PathBuf;

use shoal_proto::auth::Token;

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The scheduler's gRPC address, "host:port".
    pub scheduler: String,
    pub token: Token,
    /// Unique in the cluster (the pod name on Kubernetes).
    pub name: String,
    /// Tasks run at once.
    pub cores: u32,
    /// The worker group it registers in ("" or "default": the default group).
    pub group: String,
    /// Abstract resources it offers (name, amount).
    pub resources: Vec<(String, f64)>,
    /// Memory this worker's pod may use; the thresholds are fractions of it.
    pub memory_limit: u64,
    pub memory: crate::memory::Thresholds,
    pub spill_dir: PathBuf,
    /// The shared-memory directory (on tmpfs, e.g. under /dev/shm) executors write results
    /// into and map inputs from; `None`: values travel as bytes through the executors' pipes.
    pub shared_dir: Option<PathBuf>,
    /// Data-plane listen address ("127.0.0.1:0" picks a port).
    pub listen: String,
    /// Host peers use to reach the data plane (defaults to the listen host).
    pub advertise_host: Option<String>,
    /// Metrics and health listen address (unauthenticated); `None` serves none.
    pub metrics_listen: Option<String>,
    /// The Python interpreter for Python tasks (`None`: this worker runs no Python).
    pub python: Option<String>,
}
