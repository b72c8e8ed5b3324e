//! The Shoal worker: one session with the scheduler (register, heartbeats, batched
//! assignments and completions), an object store with spill to disk, the data plane that
//! serves results to peers and the scheduler, and executors that run task payloads.
//!
//! Not here: scheduling decisions (the scheduler), the Python executor process (python/).

pub mod cgroup;
mod config;
pub mod core;
mod cpu;
mod data_plane;
mod executor;
pub mod memory;
mod metrics;
mod python;
mod session;
mod shared;
mod store;

pub use config::WorkerConfig;
pub use executor::{BuiltinExecutor, ExecOutcome, ExecTask, Executor};
pub use memory::{Thresholds, default_limit};
pub use python::{PythonConfig, PythonPool};
pub use session::{WorkerError, run};
pub use shared::{SharedDirError, prepare as prepare_shared_dir};
pub use store::Store;
