//! Results kept live by executor processes: where each is, having them written into the
//! store when another process must read them (the tasks needing them wait, and callers
//! such as the data plane are told when they are there), what a process's death loses, and
//! choosing the process for a job by when it could start it, counting that writing (for a
//! root task, by its family: `families.rs`).
//!
//! Not here: the processes themselves and the frames (the parent module), the store.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use bytes::Bytes;
use shoal_core::PrefixId;
use shoal_proto::v1;
use tokio::sync::{mpsc, oneshot};

use super::{Job, MAX_AHEAD, Pool, PoolMsg, frame};
use crate::store::lock;

/// The process (slot and generation) keeping a result live.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct LiveAt {
    pub(super) index: usize,
    pub(super) generation: u64,
}

/// A result kept live: where, and its size once written.
#[derive(Clone, Copy)]
pub(super) struct Kept {
    pub(super) at: LiveAt,
    pub(super) size: u64,
}

/// Someone waiting for live results to be written: a job (it runs then), or a caller.
pub(super) enum Waiter {
    Job(Box<Job>),
    Caller(oneshot::Sender<()>),
}

/// What moving a live result to another process costs, as the pool weighs it against a
/// shorter queue there: writing it into fresh tmpfs pages (bench/local_compare.py measures
/// 0.32-0.44 s/GiB for writing, mapping and reading), the reader's page faults, and the
/// memory traffic both processes then compete for. Set by measurement: on the elementwise
/// row of bench/local_compare.py (2 processes) a run wrote 80 MiB at 0.35 s/GiB (0.139 s),
/// 8-14 MiB at 1.05 (0.127 s) and none at 2.1 (0.117 s).
pub(super) const MOVE_SECONDS_PER_GIB: f64 = 2.1;

/// Asks the pool to write live results into the store (for the data plane: peers and the
/// client read files or bytes, never an executor's memory).
#[derive(Clone)]
pub struct Publisher(pub(super) mpsc::UnboundedSender<PoolMsg>);

impl Publisher {
    /// Returns once each of `tasks` that is live is written, sent as bytes, or lost.
    pub async fn publish(&self, tasks: Vec<u64>) {
        let (tx, rx) = oneshot::channel();
        if self.0.send(PoolMsg::Publish(tasks, Some(tx))).is_ok() {
            let _ = rx.await;
        }
    }
}

impl Pool {
    /// Asks the processes keeping these results live to write them into the store; returns
    /// those to wait for. A result the store counts as live that no process keeps (its
    /// process died before the store heard of it) is lost now.
    pub(super) fn request_publish(&mut self, tasks: impl IntoIterator<Item = u64>) -> HashSet<u64> {
        let mut asks: HashMap<LiveAt, Vec<u64>> = HashMap::new();
        let mut pending = HashSet::new();
        for task in tasks {
            let Some(&Kept { at, .. }) = self.live.get(&task) else {
                let mut store = lock(&self.store);
                if store.is_live(task) {
                    self.lost.insert(task);
                    store.lose(task);
                }
                continue;
            };
            pending.insert(task);
            if let std::collections::hash_map::Entry::Vacant(e) = self.publishing.entry(task) {
                e.insert(Instant::now());
                asks.entry(at).or_default().push(task);
            }
        }
        for (at, publish) in asks {
            if let Some(process) = self.slots[at.index]
                .as_ref()
                .filter(|p| p.generation == at.generation)
            {
                let _ = process.frames.send(frame(&v1::ExecutorRequest {
                    publish,
                    ..Default::default()
                }));
            }
        }
        pending
    }

    /// Someone needs these live results written (the data plane, the memory policy).
    pub(super) fn publish_for(&mut self, tasks: Vec<u64>, caller: Option<oneshot::Sender<()>>) {
        let pending = self.request_publish(tasks);
        match caller {
            Some(caller) if pending.is_empty() => {
                let _ = caller.send(());
            }
            Some(caller) => self.waiting.push((Waiter::Caller(caller), pending)),
            None => {}
        }
    }

    /// `task` is no longer live (written, sent, lost or released): whoever waited only
    /// for it goes on; jobs go back to the front of the queue, in their order.
    pub(super) fn resolved(&mut self, task: u64) {
        self.publishing.remove(&task);
        if self.waiting.is_empty() {
            return;
        }
        let mut ready = Vec::new();
        let mut still = Vec::with_capacity(self.waiting.len());
        for (waiter, mut pending) in std::mem::take(&mut self.waiting) {
            pending.remove(&task);
            if pending.is_empty() {
                ready.push(waiter);
            } else {
                still.push((waiter, pending));
            }
        }
        self.waiting = still;
        for waiter in ready.into_iter().rev() {
            match waiter {
                Waiter::Job(job) => self.queue.push_front(*job),
                Waiter::Caller(caller) => {
                    let _ = caller.send(());
                }
            }
        }
    }

    /// Whether the process at `index` takes another task now.
    pub(super) fn has_room(&self, index: usize) -> bool {
        self.slots[index]
            .as_ref()
            .is_none_or(|p| p.inflight.len() < MAX_AHEAD)
    }

    /// The process for a job with families (`Families::choose` among those with room).
    pub(super) fn pick_sibling(
        &self,
        job: &Job,
        prefix: PrefixId,
        expected_us: f64,
    ) -> Option<usize> {
        let open: Vec<(usize, f64)> = (0..self.slots.len())
            .filter(|&i| self.has_room(i))
            .map(|i| (i, self.slots[i].as_ref().map_or(0.0, |p| p.queued_us)))
            .collect();
        self.families
            .choose(prefix, &job.task.families, &open, expected_us)
    }

    /// The process to send the job to: the one expected to start it first, counting the
    /// expected run time of the tasks queued there and the moving, still to come, of the
    /// job's inputs other processes keep live (one after another); among equals the one
    /// keeping most of them live, then the one holding most in its value cache. `None` when
    /// every process has `MAX_AHEAD` tasks.
    pub(super) fn pick(&self, job: &Job) -> Option<usize> {
        let now = Instant::now();
        (0..self.slots.len())
            .filter_map(|i| {
                if !self.has_room(i) {
                    return None;
                }
                let process = self.slots[i].as_ref();
                let here = process.map(|p| LiveAt {
                    index: i,
                    generation: p.generation,
                });
                let (mut live, mut writing_us) = (0usize, 0.0f64);
                for (task, kept) in job
                    .task
                    .input_tasks
                    .iter()
                    .filter_map(|t| self.live.get(t).map(|k| (t, k)))
                {
                    if Some(kept.at) == here {
                        live += 1;
                        continue;
                    }
                    let full = kept.size as f64 * MOVE_SECONDS_PER_GIB * 1e6 / (1u64 << 30) as f64;
                    let done = self
                        .publishing
                        .get(task)
                        .map_or(0.0, |asked| now.duration_since(*asked).as_micros() as f64);
                    writing_us += (full - done).max(0.0);
                }
                let held = process.map_or(0, |p| {
                    job.task
                        .input_tasks
                        .iter()
                        .filter(|t| p.holds.contains(t))
                        .count()
                });
                let queued_us = process.map_or(0.0, |p| p.queued_us);
                let start_us = (queued_us + writing_us.max(0.0)) as u64;
                Some((start_us, usize::MAX - live, usize::MAX - held, i))
            })
            .min()
            .map(|(.., i)| i)
    }

    /// The job's inputs that another process than the one at `index` keeps live: they
    /// must be written before it can run there.
    pub(super) fn live_elsewhere(&self, job: &Job, index: usize) -> Vec<u64> {
        let here = self.slots[index].as_ref().map(|p| LiveAt {
            index,
            generation: p.generation,
        });
        job.task
            .input_tasks
            .iter()
            .copied()
            .filter(|t| self.live.get(t).is_some_and(|k| Some(k.at) != here))
            .collect()
    }

    /// Jobs waiting for inputs to be written that the process keeping those inputs can
    /// now start sooner go back to the queue (the writing goes on for the others).
    pub(super) fn repick_waiting(&mut self) {
        let mut back = Vec::new();
        let mut i = 0;
        while i < self.waiting.len() {
            let now_here = match &self.waiting[i].0 {
                Waiter::Job(job) => self
                    .pick(job)
                    .is_some_and(|index| self.live_elsewhere(job, index).is_empty()),
                Waiter::Caller(_) => false,
            };
            if now_here {
                back.push(self.waiting.remove(i).0);
            } else {
                i += 1;
            }
        }
        for waiter in back.into_iter().rev() {
            if let Waiter::Job(job) = waiter {
                self.queue.push_front(*job);
            }
        }
    }

    /// Records where a live result went once its process was asked to write it.
    pub(super) fn take_published(&mut self, from: LiveAt, answer: v1::Published) {
        use v1::published::Place;
        let task = answer.task;
        if self.live.get(&task).is_some_and(|k| k.at == from) {
            self.live.remove(&task);
        }
        let mut sent = None;
        let lost = {
            let mut store = lock(&self.store);
            let held = store.is_live(task);
            match answer.place {
                Some(Place::InStore(_)) if held => match store.adopt(task) {
                    Ok(_) => false,
                    Err(e) => {
                        tracing::warn!(worker = self.config.worker_name, error = %e, "a written live result cannot be taken in");
                        store.lose(task);
                        true
                    }
                },
                Some(Place::InStore(_)) => {
                    store.discard_file(task);
                    false
                }
                Some(Place::Value(data)) if held => {
                    // The store could not take the file: jobs waiting for it get the bytes
                    // (the process that made it keeps it live for its own).
                    let data = Bytes::from(data);
                    sent = Some(data.clone());
                    if let Err(e) = store.put(task, data) {
                        tracing::warn!(worker = self.config.worker_name, error = %e, "cannot store a live result's bytes");
                    }
                    false
                }
                Some(Place::Value(_)) => false,
                Some(Place::Gone(_)) | None => {
                    if held {
                        store.lose(task);
                    }
                    held
                }
            }
        };
        if lost {
            self.lost.insert(task);
        }
        if let Some(data) = sent {
            self.give_bytes(task, &data);
        }
        self.resolved(task);
    }

    /// Jobs waiting for `task` read it from these bytes, not from a file.
    fn give_bytes(&mut self, task: u64, data: &Bytes) {
        for (waiter, _) in &mut self.waiting {
            let Waiter::Job(job) = waiter else {
                continue;
            };
            let t = &mut job.task;
            for i in 0..t.input_tasks.len() {
                if t.input_tasks[i] == task && i < t.inputs.len() && i < t.in_store.len() {
                    t.inputs[i] = data.clone();
                    t.in_store[i] = false;
                }
            }
        }
    }

    /// The results a dead process kept live are lost: the store reports them, jobs
    /// needing them fail as missing inputs, and whoever waited for them goes on.
    pub(super) fn lose_live(&mut self, dead: LiveAt, pid: u32) {
        let lost: Vec<u64> = self
            .live
            .iter()
            .filter_map(|(&task, k)| (k.at == dead).then_some(task))
            .collect();
        if lost.is_empty() {
            return;
        }
        tracing::warn!(
            worker = self.config.worker_name,
            pid,
            results = lost.len(),
            "a python executor died keeping results live; they are lost and computed again"
        );
        {
            let mut store = lock(&self.store);
            for task in &lost {
                store.lose(*task);
            }
        }
        for task in lost {
            self.live.remove(&task);
            self.lost.insert(task);
            self.resolved(task);
        }
    }
}
