//! The task record: what a task runs, where it is in its life, and why it failed.
//! Transitions between states are made only by `Core::set_state` (core.rs), which keeps the
//! counters consistent; this module only defines the data.

use std::sync::Arc;

use smallvec::SmallVec;

use crate::ids::{ClientId, TaskId, TaskRef, WorkerId};

/// Native operations with no Python cost (tests and benchmarks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuiltinOp {
    Noop,
    SleepMs(u64),
    Concat,
    Sum(i64),
    Allocate(u64),
    Fail(Box<str>),
    Constant(Box<[u8]>),
}

/// What a task runs. The core never looks inside; it keeps it for (re)assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    Builtin(BuiltinOp),
    /// A cloudpickled Python callable with its arguments.
    Python(Arc<[u8]>),
}

/// Where a task is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Some dependency is not in memory yet.
    Waiting,
    /// Every dependency is in memory; queued for a worker.
    Ready,
    /// Sent to a worker, queued or running there.
    Assigned(WorkerId),
    /// Finished; its result is held by this worker (and maybe replicas).
    Memory(WorkerId),
    /// Finished once, result freed because nobody needed it; kept for lineage.
    Released,
    /// Failed, or a dependency failed. The error is in `Core::errors`.
    Erred,
}

impl TaskState {
    /// Not finished and not failed: the task still has to run.
    #[inline]
    pub fn is_unfinished(self) -> bool {
        matches!(
            self,
            TaskState::Waiting | TaskState::Ready | TaskState::Assigned(_)
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            TaskState::Waiting => "waiting",
            TaskState::Ready => "ready",
            TaskState::Assigned(_) => "assigned",
            TaskState::Memory(_) => "memory",
            TaskState::Released => "released",
            TaskState::Erred => "erred",
        }
    }
}

/// Why a task failed. Shared (`Arc`) between a failed task and the dependents it dooms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError {
    /// Machine-readable kind: an exception type name, or "WorkerLost", "TaskFailed", ...
    pub kind: String,
    /// One line for humans: what failed, where, and how to fix it when known.
    pub message: String,
    /// Longer detail: a traceback, or the history of worker losses.
    pub detail: String,
    /// The worker the task failed on ("" when none).
    pub worker: String,
    /// The key of the task that failed first, when this error reached a dependent.
    pub origin_key: Option<String>,
}

/// One task. Kept small: a million-task graph holds a million of these.
#[derive(Debug)]
pub struct Task {
    pub key: Box<str>,
    pub deps: Box<[TaskId]>,
    /// Dependents as references: entries of forgotten dependents are stale and skipped.
    pub dependents: SmallVec<[TaskRef; 2]>,
    pub payload: Payload,
    /// Lower runs first.
    pub priority: i64,
    /// Submission order: breaks priority ties.
    pub order: u64,
    /// Bytes of the result, once known.
    pub size: u64,
    pub state: TaskState,
    pub generation: u32,
    /// While `Waiting`: dependencies not in memory. Otherwise 0.
    pub waiting_deps: u32,
    /// Dependents still to run (they need this task's data).
    pub pending_dependents: u32,
    /// Dependents whose records exist (they keep this record alive, for lineage).
    pub alive_dependents: u32,
    /// The first client that wants the result; more in `Core::extra_wanters`.
    pub owner: Option<ClientId>,
    /// Number of clients wanting the result.
    pub wanted: u16,
    /// Times this task was lost with its worker while running.
    pub failures: u8,
    pub max_retries: u8,
}

crate::static_assert_size!(Task, 144);

impl Task {
    #[inline]
    pub fn is_wanted(&self) -> bool {
        self.wanted > 0
    }

    /// Its data must be kept (or recomputed): a client wants it or a dependent will read it.
    #[inline]
    pub fn data_needed(&self) -> bool {
        self.wanted > 0 || self.pending_dependents > 0
    }

    /// The record itself may be forgotten: nothing refers to it any more.
    #[inline]
    pub fn forgettable(&self) -> bool {
        self.wanted == 0 && self.alive_dependents == 0
    }
}
