//! The task record: what a task runs, where it is in its life, and why it failed.
//! Transitions between states are made only by `Core::set_state` (core.rs), which keeps the
//! counters consistent; this module only defines the data.

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
    /// A Python task (boxed: keeps `Payload` at 24 bytes).
    Python(Box<PythonPayload>),
}

/// A Python task: its pickled form (the format belongs to the Python package) and the id
/// of the shared blob it uses (0: none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PythonPayload {
    pub pickled: Box<[u8]>,
    pub shared: u64,
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
    /// The pickled exception of a Python task (opaque to the core).
    pub exception: Vec<u8>,
    /// Each loss of a worker while it ran the task (kinds "WorkerLost", "WorkerOOMKilled").
    pub losses: Vec<crate::loss::WorkerLoss>,
    /// Kind "MemoryLimit": the worker's figures when it stopped the task.
    pub memory: Option<crate::loss::MemoryFigures>,
}

/// One task. Kept small: a million-task graph holds a million of these.
#[derive(Debug)]
pub struct Task {
    pub key: Box<str>,
    pub deps: Box<[TaskId]>,
    /// Dependents as references: entries of forgotten dependents are stale and skipped.
    pub dependents: Dependents,
    pub payload: Payload,
    /// Lower runs first.
    pub priority: i32,
    /// Serial number: submission order (breaks priority ties) and the id clients know the
    /// task by (`first_serial` of its submission + its ordinal).
    pub order: u64,
    /// Bytes of the result, once known.
    pub size: u64,
    pub state: TaskState,
    /// While `Waiting`: dependencies not in memory. Otherwise 0.
    pub waiting_deps: u32,
    /// Dependents still to run (they need this task's data).
    pub pending_dependents: u32,
    /// Dependents whose records exist (they keep this record alive, for lineage).
    pub alive_dependents: u32,
    /// The first client that wants the result ([`NO_CLIENT`] when none; see `owner()`);
    /// more in `Core::extra_wanters`.
    pub owner: ClientId,
    /// Number of clients wanting the result.
    pub wanted: u16,
    /// Times this task was lost with its worker while running.
    pub failures: u8,
    pub max_retries: u8,
}

crate::static_assert_size!(Task, 120);

/// `Task::owner` of a task no client wants (keeps `Task` small; `Option` would not).
pub const NO_CLIENT: ClientId = ClientId(u32::MAX);

impl Task {
    /// The first client wanting the result.
    #[inline]
    pub fn owner(&self) -> Option<ClientId> {
        (self.owner != NO_CLIENT).then_some(self.owner)
    }

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

/// A task's dependents in 16 bytes: most tasks have none or one (maps, reductions), so
/// only a task with several pays for a heap list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Dependents {
    #[default]
    None,
    One(TaskRef),
    Many(Box<Vec<TaskRef>>),
}

crate::static_assert_size!(Dependents, 16);

impl Dependents {
    pub fn as_slice(&self) -> &[TaskRef] {
        match self {
            Dependents::None => &[],
            Dependents::One(r) => std::slice::from_ref(r),
            Dependents::Many(list) => list,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Dependents::None)
    }

    pub fn contains(&self, r: &TaskRef) -> bool {
        self.as_slice().contains(r)
    }

    pub fn push(&mut self, r: TaskRef) {
        *self = match std::mem::take(self) {
            Dependents::None => Dependents::One(r),
            Dependents::One(first) => Dependents::Many(Box::new(vec![first, r])),
            Dependents::Many(mut list) => {
                list.push(r);
                Dependents::Many(list)
            }
        };
    }

    pub fn retain(&mut self, keep: impl FnMut(&TaskRef) -> bool) {
        let mut list = self.as_slice().to_vec();
        list.retain(keep);
        *self = match list.len() {
            0 => Dependents::None,
            1 => Dependents::One(list[0]),
            _ => Dependents::Many(Box::new(list)),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TaskId;

    fn r(i: u32) -> TaskRef {
        TaskRef {
            id: TaskId(i),
            generation: 0,
        }
    }

    /// Dependents grow from none to one to many and shrink back, in order.
    #[test]
    fn dependents_grow_and_shrink() {
        let mut d = Dependents::default();
        assert!(d.is_empty());
        d.push(r(1));
        assert_eq!(d, Dependents::One(r(1)));
        d.push(r(2));
        d.push(r(3));
        assert_eq!(d.as_slice(), &[r(1), r(2), r(3)]);
        d.retain(|x| *x != r(2));
        assert_eq!(d.as_slice(), &[r(1), r(3)]);
        d.retain(|x| *x == r(3));
        assert_eq!(d, Dependents::One(r(3)));
        assert_eq!(d.len(), 1);
    }
}
