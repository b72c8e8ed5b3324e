//! Why workers were lost, and how that follows their tasks: each loss of a worker while
//! it ran a task is kept with the task (its cause, the worker's memory limit), a cause
//! reported after the connection dropped is attached to the tasks that were running
//! there, and the error of a task that kept killing its workers says so ("running on 3
//! workers that were OOM-killed (limit 256 MiB)") with the fix.
//!
//! Not here: noticing a loss (the scheduler's sessions), learning its cause (the
//! operator reads pod states and calls `ReportWorkerLost`).

use std::collections::VecDeque;

use crate::core::Core;
use crate::ids::TaskRef;
use crate::task::TaskError;

/// Why a worker went away, as far as the scheduler was told.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum LossCause {
    /// The connection ended and nobody said why.
    #[default]
    Unknown,
    /// The kernel killed the worker's container for memory.
    OomKilled,
    /// The worker's container exited with an error.
    Crashed,
    /// The pod was evicted or deleted, or its node went away.
    Removed,
}

/// What is known of one loss.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loss {
    pub cause: LossCause,
    /// The worker's memory limit in bytes (0: unknown).
    pub memory_limit: u64,
    /// For humans: the connection error, the pod's container state.
    pub detail: String,
}

/// One loss of a worker while it ran a task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerLoss {
    pub worker: String,
    pub loss: Loss,
}

/// The figures behind a `MemoryLimit` error (from the worker's memory policy).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MemoryFigures {
    pub used: u64,
    pub limit: u64,
    pub threshold: f64,
    pub task_used: u64,
}

impl Eq for MemoryFigures {}

/// The answer to a reported loss.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LossAnswer {
    /// Keys of the tasks the worker was running (at most [`ANSWER_KEYS`]).
    pub running: Vec<String>,
    pub running_total: usize,
    /// False when no worker of that name is connected or was lost recently.
    pub known: bool,
}

/// Keys named in a [`LossAnswer`].
pub const ANSWER_KEYS: usize = 20;
/// Lost workers remembered for causes reported late.
const RECENT_LOSSES: usize = 256;

/// The tasks a worker was running when it was lost, with their keys.
pub(crate) type RanThere = Vec<(TaskRef, Box<str>)>;

/// Workers lost recently, with the tasks they were running.
#[derive(Default)]
pub(crate) struct RecentLosses {
    entries: VecDeque<(String, RanThere)>,
}

impl RecentLosses {
    pub(crate) fn push(&mut self, worker: String, running: RanThere) {
        self.entries.retain(|(w, _)| *w != worker);
        if self.entries.len() == RECENT_LOSSES {
            self.entries.pop_front();
        }
        self.entries.push_back((worker, running));
    }

    fn find(&self, worker: &str) -> Option<&[(TaskRef, Box<str>)]> {
        self.entries
            .iter()
            .find(|(w, _)| w == worker)
            .map(|(_, tasks)| tasks.as_slice())
    }
}

fn mib(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

impl Loss {
    /// "OOM-killed (limit 256 MiB)", "lost (connection reset)".
    pub fn describe(&self) -> String {
        let what = match self.cause {
            LossCause::OomKilled => "OOM-killed",
            LossCause::Crashed => "crashed",
            LossCause::Removed => "removed",
            LossCause::Unknown => "lost",
        };
        let mut s = what.to_string();
        if self.cause == LossCause::OomKilled && self.memory_limit > 0 {
            s += &format!(" (limit {})", mib(self.memory_limit));
        }
        if !self.detail.is_empty() {
            s += &format!(": {}", self.detail);
        }
        s
    }
}

/// The error of a task whose worker was lost more often than it may be retried.
pub(crate) fn exhausted(key: &str, losses: &[WorkerLoss], max_retries: u8) -> TaskError {
    let detail = losses
        .iter()
        .map(|l| {
            format!(
                "worker {:?} {} while running it",
                l.worker,
                l.loss.describe()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let oom: Vec<&WorkerLoss> = losses
        .iter()
        .filter(|l| l.loss.cause == LossCause::OomKilled)
        .collect();
    let last = losses.last().cloned().unwrap_or_default();
    if oom.is_empty() {
        return TaskError {
            kind: "WorkerLost".into(),
            message: format!(
                "task {key:?} lost its worker {} times (limit {max_retries} retries); last: \
                 worker {:?} {}. If the task itself kills its worker (memory, crashes), fix the \
                 task or give workers more memory",
                losses.len(),
                last.worker,
                last.loss.describe()
            ),
            detail,
            worker: last.worker,
            losses: losses.to_vec(),
            ..TaskError::default()
        };
    }
    let limit = oom.iter().map(|l| l.loss.memory_limit).max().unwrap_or(0);
    let limit = if limit > 0 {
        format!(" (limit {})", mib(limit))
    } else {
        String::new()
    };
    let names: Vec<&str> = oom.iter().map(|l| l.worker.as_str()).collect();
    let others = losses.len() - oom.len();
    let others = if others > 0 {
        format!(", and {others} lost otherwise")
    } else {
        String::new()
    };
    TaskError {
        kind: "WorkerOOMKilled".into(),
        message: format!(
            "task {key:?} was running on {} worker{} that {} OOMKilled{limit}: {}{others}. \
             Raise the worker group's memory limit (resources.limits.memory, or set oomPolicy) \
             or make the task's chunks or partitions smaller",
            oom.len(),
            if oom.len() == 1 { "" } else { "s" },
            if oom.len() == 1 { "was" } else { "were" },
            names.join(", "),
        ),
        detail,
        worker: last.worker,
        losses: losses.to_vec(),
        ..TaskError::default()
    }
}

impl Core {
    /// The cause of a worker's loss was reported (by the operator). If the worker is
    /// still connected the cause is the caller's to keep until the connection drops; if
    /// it was lost already, the tasks that were running there have the cause attached.
    /// Answers with those tasks.
    pub fn on_loss_reported(&mut self, worker: &str, loss: &Loss) -> LossAnswer {
        let keys: Vec<String> =
            if let Some((id, _)) = self.workers_iter().find(|(_, w)| w.name == worker) {
                self.tasks_iter()
                    .filter(|(_, t)| t.state == crate::task::TaskState::Assigned(id))
                    .map(|(_, t)| t.key.to_string())
                    .collect()
            } else if let Some(tasks) = self.recent_losses.find(worker) {
                let tasks = tasks.to_vec();
                for (r, _) in &tasks {
                    if self.resolve(*r).is_none() {
                        continue;
                    }
                    if let Some(history) = self.loss_history.get_mut(&r.id) {
                        for entry in history.iter_mut().filter(|l| l.worker == worker) {
                            entry.loss = loss.clone();
                        }
                    }
                }
                tasks.into_iter().map(|(_, key)| key.into()).collect()
            } else {
                return LossAnswer::default();
            };
        LossAnswer {
            running_total: keys.len(),
            running: keys.into_iter().take(ANSWER_KEYS).collect(),
            known: true,
        }
    }
}
