//! The scheduler's view of a worker: capacity, load and what it holds in aggregate.
//! Which tasks a worker holds is in the task records, not here.

use crate::resources::Resources;

/// Whether a worker takes new tasks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WorkerState {
    Active,
    /// Asked to retire: takes no new tasks; its data is being moved away.
    Retiring,
}

#[derive(Clone, Debug)]
pub struct Worker {
    pub name: String,
    /// The worker group it registered in ("default" when it named none).
    pub group: String,
    /// What it offers to tasks asking for resources.
    pub resources: Resources,
    pub cores: u32,
    pub memory_limit: u64,
    pub data_address: String,
    pub state: WorkerState,
    /// Paused for memory (it said so): no new tasks, though it keeps its data and runs
    /// what it has.
    pub paused: bool,
    /// Tasks assigned and not yet finished.
    pub assigned: u32,
    /// Tasks whose result it holds (primary copies and replicas).
    pub stored_tasks: u64,
    pub stored_bytes: u64,
    /// From the last heartbeat.
    pub memory_used: u64,
    pub spilled_bytes: u64,
    /// Replications asked of this worker and not yet confirmed.
    pub pending_replicas: u32,
}

impl Worker {
    pub fn new(name: String, cores: u32, memory_limit: u64, data_address: String) -> Self {
        Worker {
            name,
            group: crate::adaptive::DEFAULT_GROUP.to_string(),
            resources: Resources::default(),
            cores: cores.max(1),
            memory_limit,
            data_address,
            state: WorkerState::Active,
            paused: false,
            assigned: 0,
            stored_tasks: 0,
            stored_bytes: 0,
            memory_used: 0,
            spilled_bytes: 0,
            pending_replicas: 0,
        }
    }

    #[inline]
    pub fn is_active(&self) -> bool {
        self.state == WorkerState::Active
    }

    /// Whether new tasks (and copies of data) may go to it.
    #[inline]
    pub fn takes_tasks(&self) -> bool {
        self.is_active() && !self.paused
    }
}
