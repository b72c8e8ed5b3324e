//! The worker's state machine: tasks assigned and waiting for inputs, inputs being
//! fetched, tasks ready and running, the results it reports, and its memory state
//! (running or paused, a task being stopped for memory). Plain data and plain methods:
//! scheduler messages, executor outcomes, fetch results and memory samples come in as
//! arguments; what must happen outside (start a task, fetch from a peer, stop an
//! executor) goes out through [`Effects`]; messages for the scheduler pile up in an
//! outbox the session loop sends. The object store is passed in (it is shared with the
//! data plane, which serves results to peers). Time comes in as arguments too (microseconds
//! on the session's clock), for the peer transfers it reports.
//!
//! Not here: sockets, processes, timers (`session.rs`), the memory policy itself
//! (`memory.rs`).

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use shoal_proto::v1;
use shoal_proto::v1::scheduler_message::Msg;
use shoal_proto::v1::worker_message::Msg as Out;

use crate::executor::{ExecOutcome, ExecTask};
use crate::memory::{self, Sample, Thresholds};
use crate::store::Store;

/// What the worker core asks of the world.
pub trait Effects {
    /// Fetch these results from the peer `peer` (its worker id) at `address`; the answer
    /// comes back as [`Fetched`] through [`WorkerCore::on_fetched`].
    fn fetch(&mut self, peer: u32, address: &str, tasks: Vec<u64>, replicate: bool);
    /// Run a task (`python`: on the Python executor pool, else the builtin executor).
    fn start(&mut self, task: ExecTask, python: bool);
    /// Stop the executor running `task`; the task's outcome must then be `error`.
    fn stop(&mut self, task: u64, error: v1::TaskError);
    /// The executors may drop what they keep of these released results.
    fn released(&mut self, tasks: &[u64]);
    /// Have these results, live in executors, written into the store (the memory policy
    /// spills them then).
    fn publish(&mut self, tasks: Vec<u64>);
    /// A peer left: connections to it may be closed.
    fn forget_peer(&mut self, address: &str);
}

/// The answer to an [`Effects::fetch`].
pub enum Fetched {
    Done {
        /// The peer's worker id.
        peer: u32,
        objects: HashMap<u64, Bytes>,
        missing: Vec<u64>,
        replicate: bool,
        /// How long the fetch took.
        duration_us: u64,
    },
    Failed {
        tasks: Vec<u64>,
        peer: String,
        error: String,
        replicate: bool,
    },
}

/// An assigned task waiting for inputs from peers.
struct Waiting {
    assignment: v1::TaskAssignment,
    missing: usize,
}

/// A task stopped for memory whose outcome has not come back yet.
struct Stopping {
    task: u64,
}

/// Peer transfers kept for the scheduler at most (the oldest go beyond this).
pub const MAX_PENDING_TRANSFERS: usize = 1000;

/// A completed fetch not reported yet, and when it ended (session clock, microseconds).
struct PendingTransfer {
    transfer: v1::Transfer,
    ended_us: u64,
}

/// Counts kept for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    pub paused: bool,
    pub pauses: u64,
    pub stopped_tasks: u64,
    /// Pod (or process-tree) bytes in use at the last sample.
    pub used: u64,
}

pub struct WorkerCore {
    name: String,
    cores: usize,
    thresholds: Thresholds,
    peers: HashMap<u32, String>,
    waiting: HashMap<u64, Waiting>,
    /// Input id -> tasks waiting for it.
    needed_by: HashMap<u64, Vec<u64>>,
    /// Inputs fetched from peers, with the number of queued tasks still to read them.
    fetched: HashMap<u64, (Bytes, usize)>,
    ready: VecDeque<v1::TaskAssignment>,
    /// Running tasks, with their keys.
    running: HashMap<u64, String>,
    /// Fetched inputs a running task reads from shared memory (`Store::share_input`).
    shared_inputs: HashMap<u64, Vec<u64>>,
    /// Builtin tasks among `running` (they are limited to `cores` at once).
    builtin_tasks: HashSet<u64>,
    /// Shared payload blobs by id (sent once by the scheduler, kept for later tasks).
    blobs: HashMap<u64, Bytes>,
    stopping: Option<Stopping>,
    memory: MemoryStats,
    outbox: Outbox,
}

/// Messages for the scheduler, batched per kind.
#[derive(Default)]
struct Outbox {
    finished: Vec<v1::TaskFinished>,
    failed: Vec<v1::TaskFailed>,
    added: Vec<u64>,
    /// Results lost without a release (their executor died).
    lost: Vec<u64>,
    /// A heartbeat to send now (the memory state changed).
    heartbeat: Option<v1::Heartbeat>,
    /// Completed fetches, oldest first, at most [`MAX_PENDING_TRANSFERS`].
    transfers: VecDeque<PendingTransfer>,
    /// Transfers dropped because too many were pending.
    transfers_dropped: u64,
}

fn is_python(assignment: &v1::TaskAssignment) -> bool {
    matches!(
        assignment.payload.as_ref().and_then(|p| p.kind.as_ref()),
        Some(v1::task_payload::Kind::Python(_))
    )
}

impl WorkerCore {
    pub fn new(name: String, cores: usize, thresholds: Thresholds) -> Self {
        WorkerCore {
            name,
            cores: cores.max(1),
            thresholds,
            peers: HashMap::new(),
            waiting: HashMap::new(),
            needed_by: HashMap::new(),
            fetched: HashMap::new(),
            ready: VecDeque::new(),
            running: HashMap::new(),
            shared_inputs: HashMap::new(),
            builtin_tasks: HashSet::new(),
            blobs: HashMap::new(),
            stopping: None,
            memory: MemoryStats::default(),
            outbox: Outbox::default(),
        }
    }

    /// A scheduler message other than `Registered` and `Shutdown` (the loop's own).
    pub fn on_message(&mut self, msg: Msg, store: &mut Store, fx: &mut impl Effects) {
        match msg {
            Msg::Assign(a) => {
                for blob in a.blobs {
                    self.blobs.insert(blob.id, Bytes::from(blob.data));
                }
                self.assign(a.tasks, store, fx);
            }
            Msg::Release(r) => {
                let tasks = self.not_running(r.tasks);
                for &id in &tasks {
                    store.remove(id);
                }
                fx.released(&tasks);
            }
            Msg::Cancel(c) => self.cancel(&c.tasks),
            Msg::Peers(p) => {
                for peer in p.added {
                    self.peers.insert(peer.worker_id, peer.data_address);
                }
                for id in p.removed {
                    if let Some(address) = self.peers.remove(&id) {
                        fx.forget_peer(&address);
                    }
                }
            }
            Msg::Replicate(r) => {
                let mut by_holder: HashMap<u32, Vec<u64>> = HashMap::new();
                for t in r.tasks {
                    let holder = t.workers.first().copied().unwrap_or(u32::MAX);
                    by_holder.entry(holder).or_default().push(t.task);
                }
                for (holder, ids) in by_holder {
                    self.fetch(holder, ids, true, fx);
                }
            }
            Msg::Registered(_) | Msg::Shutdown(_) => {}
        }
        self.tell_moved(store, fx);
        self.pump(store, fx);
    }

    fn assign(&mut self, tasks: Vec<v1::TaskAssignment>, store: &Store, fx: &mut impl Effects) {
        let mut to_fetch: HashMap<u32, Vec<u64>> = HashMap::new();
        for assignment in tasks {
            let mut missing = 0;
            for input in &assignment.inputs {
                if store.contains(input.task) {
                    continue;
                }
                if let Some((_, uses)) = self.fetched.get_mut(&input.task) {
                    *uses += 1;
                    continue;
                }
                missing += 1;
                let waiters = self.needed_by.entry(input.task).or_default();
                if waiters.is_empty() {
                    let holder = input.workers.first().copied().unwrap_or(u32::MAX);
                    to_fetch.entry(holder).or_default().push(input.task);
                }
                waiters.push(assignment.task);
            }
            if missing == 0 {
                self.ready.push_back(assignment);
            } else {
                self.waiting.insert(
                    assignment.task,
                    Waiting {
                        assignment,
                        missing,
                    },
                );
            }
        }
        for (holder, ids) in to_fetch {
            self.fetch(holder, ids, false, fx);
        }
    }

    fn fetch(&mut self, holder: u32, ids: Vec<u64>, replicate: bool, fx: &mut impl Effects) {
        match self.peers.get(&holder) {
            Some(address) => fx.fetch(holder, address, ids, replicate),
            None => {
                let failed = Fetched::Failed {
                    tasks: ids,
                    peer: format!("worker id {holder}"),
                    error: "no such peer (it left the cluster)".into(),
                    replicate,
                };
                self.take_fetched(failed, None);
            }
        }
    }

    /// Inputs (or replicas) came from a peer, or could not be fetched; `now_us` is when
    /// (the session's clock, as for [`WorkerCore::take_messages`]).
    pub fn on_fetched(
        &mut self,
        fetched: Fetched,
        now_us: u64,
        store: &mut Store,
        fx: &mut impl Effects,
    ) {
        if let Fetched::Done {
            peer,
            objects,
            duration_us,
            ..
        } = &fetched
        {
            let bytes = objects.values().map(|b| b.len() as u64).sum();
            let transfer = v1::Transfer {
                from: *peer,
                bytes,
                objects: objects.len() as u32,
                duration_us: *duration_us,
                ended_ago_us: 0,
            };
            self.record_transfer(transfer, now_us);
        }
        self.take_fetched(fetched, Some(store));
        self.pump(store, fx);
    }

    /// Keeps a completed fetch for the next messages, dropping the oldest beyond the bound.
    fn record_transfer(&mut self, transfer: v1::Transfer, ended_us: u64) {
        let pending = &mut self.outbox.transfers;
        if pending.len() >= MAX_PENDING_TRANSFERS {
            pending.pop_front();
            if self.outbox.transfers_dropped == 0 {
                tracing::warn!(
                    worker = self.name,
                    bound = MAX_PENDING_TRANSFERS,
                    "too many peer transfers not reported yet: dropping the oldest \
                     (counted in shoal_worker_transfers_dropped; not logged again)"
                );
            }
            self.outbox.transfers_dropped += 1;
        }
        pending.push_back(PendingTransfer { transfer, ended_us });
    }

    fn take_fetched(&mut self, fetched: Fetched, store: Option<&mut Store>) {
        match fetched {
            Fetched::Done {
                objects,
                missing,
                replicate: true,
                ..
            } => {
                if let Some(store) = store {
                    for (id, data) in objects {
                        if store.put(id, data).is_ok() {
                            self.outbox.added.push(id);
                        }
                    }
                }
                if !missing.is_empty() {
                    tracing::warn!(
                        worker = self.name,
                        count = missing.len(),
                        "results to replicate were gone from their holder"
                    );
                }
            }
            Fetched::Failed {
                tasks,
                peer,
                error,
                replicate: true,
            } => tracing::warn!(
                worker = self.name,
                peer,
                error,
                count = tasks.len(),
                "replication failed"
            ),
            Fetched::Done {
                objects, missing, ..
            } => {
                for (id, data) in objects {
                    let waiters = self.needed_by.remove(&id).unwrap_or_default();
                    self.fetched.insert(id, (data, waiters.len()));
                    for task in waiters {
                        if let Some(w) = self.waiting.get_mut(&task) {
                            w.missing -= 1;
                            if w.missing == 0
                                && let Some(w) = self.waiting.remove(&task)
                            {
                                self.ready.push_back(w.assignment);
                            }
                        }
                    }
                }
                for id in missing {
                    self.input_lost(id, "its holder no longer has it");
                }
            }
            Fetched::Failed {
                tasks, peer, error, ..
            } => {
                tracing::warn!(worker = self.name, peer, error, "cannot fetch inputs");
                for id in tasks {
                    self.input_lost(id, &format!("fetch from {peer} failed: {error}"));
                }
            }
        }
    }

    /// An input could not be fetched: every task waiting for it goes back to the scheduler.
    fn input_lost(&mut self, input: u64, cause: &str) {
        for task in self.needed_by.remove(&input).unwrap_or_default() {
            let Some(w) = self.waiting.remove(&task) else {
                continue;
            };
            self.drop_fetched_inputs(&w.assignment);
            let message = format!("input of task {:?} unavailable: {cause}", w.assignment.key);
            self.input_failed(&w.assignment, input, message);
        }
    }

    fn input_failed(&mut self, assignment: &v1::TaskAssignment, input: u64, message: String) {
        let missing_from = assignment
            .inputs
            .iter()
            .find(|i| i.task == input)
            .and_then(|i| i.workers.first().copied());
        self.outbox.failed.push(v1::TaskFailed {
            task: assignment.task,
            error: Some(v1::TaskError {
                kind: "InputLost".into(),
                message,
                worker: self.name.clone(),
                ..Default::default()
            }),
            missing_input: true,
            missing_task: input,
            missing_from,
        });
    }

    /// The released tasks, less those running here again: a release can follow the
    /// assignment that recomputes a lost result, and is about the old copy; the executor
    /// would take it after the task it was sent and drop the new value. (A task not yet
    /// sent is safe: the release reaches the executor first.)
    fn not_running(&self, mut tasks: Vec<u64>) -> Vec<u64> {
        tasks.retain(|id| !self.running.contains_key(id));
        tasks
    }

    /// Forgets this task's claim on fetched inputs (it will not run here).
    fn drop_fetched_inputs(&mut self, assignment: &v1::TaskAssignment) {
        for input in &assignment.inputs {
            if let Some((_, uses)) = self.fetched.get_mut(&input.task) {
                *uses = uses.saturating_sub(1);
                if *uses == 0 {
                    self.fetched.remove(&input.task);
                }
            }
            if let Some(waiters) = self.needed_by.get_mut(&input.task) {
                waiters.retain(|t| *t != assignment.task);
            }
        }
    }

    /// Builtin tasks run at most `cores` at once; Python tasks go to the executor pool at
    /// once (it queues them for its processes). A paused worker starts nothing.
    fn can_start_next(&self) -> bool {
        if self.memory.paused {
            return false;
        }
        match self.ready.front() {
            None => false,
            Some(a) => is_python(a) || self.builtin_tasks.len() < self.cores,
        }
    }

    /// Starts ready tasks while cores are free. A builtin task reading results that
    /// Python executors keep live has them written first and waits at the back (it is
    /// tried again at the next event).
    pub fn pump(&mut self, store: &mut Store, fx: &mut impl Effects) {
        let mut waited = 0;
        while self.can_start_next() && waited < self.ready.len() {
            let Some(assignment) = self.ready.pop_front() else {
                break;
            };
            if !is_python(&assignment) && store.has_live() {
                let live: Vec<u64> = assignment
                    .inputs
                    .iter()
                    .map(|i| i.task)
                    .filter(|&t| store.is_live(t))
                    .collect();
                if !live.is_empty() {
                    fx.publish(live);
                    self.ready.push_back(assignment);
                    waited += 1;
                    continue;
                }
            }
            self.start(assignment, store, fx);
        }
    }

    fn start(&mut self, assignment: v1::TaskAssignment, store: &mut Store, fx: &mut impl Effects) {
        let python = is_python(&assignment);
        let mut inputs = Vec::with_capacity(assignment.inputs.len());
        let mut in_store = Vec::with_capacity(assignment.inputs.len());
        let mut lost = None;
        for input in &assignment.inputs {
            // An executor maps a result in the store's files itself: no bytes to send.
            if python && store.in_files(input.task) {
                inputs.push(Bytes::new());
                in_store.push(true);
                continue;
            }
            if let Some(data) = store.get(input.task) {
                inputs.push(data);
            } else if let Some((data, _)) = self.fetched.get(&input.task) {
                // A large input from a peer goes into shared memory once, for every task
                // here that reads it, rather than through a pipe per task.
                if python && store.share_input(input.task, data) {
                    self.shared_inputs
                        .entry(assignment.task)
                        .or_default()
                        .push(input.task);
                    inputs.push(Bytes::new());
                    in_store.push(true);
                    continue;
                }
                inputs.push(data.clone());
            } else {
                lost = Some(input.task);
                break;
            }
            in_store.push(false);
        }
        self.drop_fetched_inputs(&assignment);
        if let Some(input) = lost {
            let message = format!(
                "input of task {:?} was released before it ran",
                assignment.key
            );
            self.input_failed(&assignment, input, message);
            return;
        }
        self.running.insert(assignment.task, assignment.key.clone());
        if !python {
            self.builtin_tasks.insert(assignment.task);
        }
        let payload = assignment.payload.unwrap_or_default();
        let shared = match &payload.kind {
            Some(v1::task_payload::Kind::Python(p)) if p.shared != 0 => {
                self.blobs.get(&p.shared).map(|b| (p.shared, b.clone()))
            }
            _ => None,
        };
        let task = ExecTask {
            task: assignment.task,
            key: assignment.key,
            shared,
            payload,
            inputs,
            in_store,
            input_tasks: assignment.inputs.iter().map(|i| i.task).collect(),
            wanted: assignment.wanted,
            families: assignment.families,
        };
        fx.start(task, python);
    }

    /// A task ended (ran, failed, or was stopped).
    pub fn on_outcome(&mut self, outcome: ExecOutcome, store: &mut Store) {
        self.take_lost(store);
        let Some(key) = self.running.remove(&outcome.task) else {
            return;
        };
        for input in self.shared_inputs.remove(&outcome.task).unwrap_or_default() {
            store.unshare_input(input);
        }
        self.builtin_tasks.remove(&outcome.task);
        if self
            .stopping
            .as_ref()
            .is_some_and(|s| s.task == outcome.task)
        {
            self.stopping = None;
        }
        if let Some(input) = outcome.lost_input {
            self.outbox.failed.push(v1::TaskFailed {
                task: outcome.task,
                error: Some(v1::TaskError {
                    kind: "InputLost".into(),
                    message: format!(
                        "input of task {key:?} was lost on worker {:?} (the executor keeping it \
                         live died); the scheduler computes it again",
                        self.name
                    ),
                    worker: self.name.clone(),
                    ..Default::default()
                }),
                missing_input: true,
                missing_task: input,
                missing_from: None,
            });
            return;
        }
        let error = match outcome.result {
            Ok(data) => {
                let stored = if let Some(size) = outcome.live {
                    store.put_live(outcome.task, size);
                    Ok(size)
                } else if outcome.in_store {
                    store.adopt(outcome.task)
                } else {
                    let size = data.len() as u64;
                    store.put(outcome.task, data).map(|()| size)
                };
                match stored {
                    Ok(size) => {
                        self.outbox.finished.push(v1::TaskFinished {
                            task: outcome.task,
                            size,
                            duration_us: outcome.duration.as_micros() as u64,
                        });
                        return;
                    }
                    Err(e) => v1::TaskError {
                        kind: e.kind().into(),
                        message: e.to_string(),
                        worker: self.name.clone(),
                        ..Default::default()
                    },
                }
            }
            Err(error) => error,
        };
        self.outbox.failed.push(v1::TaskFailed {
            task: outcome.task,
            error: Some(error),
            missing_input: false,
            missing_task: 0,
            missing_from: None,
        });
    }

    /// Live results lost since the last look go to the scheduler (it recomputes them).
    fn take_lost(&mut self, store: &mut Store) {
        let lost = store.take_lost();
        if !lost.is_empty() {
            tracing::warn!(
                worker = self.name,
                results = lost.len(),
                "results kept live by an executor that died are lost; the scheduler recomputes those still needed"
            );
            self.outbox.lost.extend(lost);
        }
    }

    fn cancel(&mut self, ids: &[u64]) {
        let ids: HashSet<u64> = ids.iter().copied().collect();
        let cancelled: Vec<v1::TaskAssignment> = self
            .waiting
            .extract_if(|id, _| ids.contains(id))
            .map(|(_, w)| w.assignment)
            .collect();
        for a in &cancelled {
            self.drop_fetched_inputs(a);
        }
        let (keep, drop): (Vec<_>, Vec<_>) =
            self.ready.drain(..).partition(|a| !ids.contains(&a.task));
        self.ready = keep.into();
        for a in &drop {
            self.drop_fetched_inputs(a);
        }
    }

    /// Executors let go of their mappings of results that spilled from shared memory
    /// (they read them from the spill directory next time), so that the memory is freed.
    fn tell_moved(&mut self, store: &mut Store, fx: &mut impl Effects) {
        let moved = store.take_moved();
        if !moved.is_empty() {
            fx.released(&moved);
        }
    }

    /// A memory sample: spill, pause or resume, and stop a task, as the policy decides.
    pub fn on_memory(&mut self, sample: &Sample, store: &mut Store, fx: &mut impl Effects) {
        let decision = memory::decide(
            &self.thresholds,
            sample,
            self.memory.paused,
            self.stopping.is_some(),
        );
        self.memory.used = sample.used;
        self.take_lost(store);
        if decision.spill_to.is_some() {
            // Live results are executors' memory: written into the store, they can spill.
            let live = store.live_ids();
            if !live.is_empty() {
                fx.publish(live);
            }
        }
        if let Some(down_to) = decision.spill_to
            && store.memory_bytes() > down_to
        {
            match store.spill_down_to(down_to) {
                Ok(bytes) => tracing::info!(
                    worker = self.name,
                    spilled = bytes,
                    used = sample.used,
                    limit = sample.limit,
                    "memory over the spill threshold: stored results moved to disk"
                ),
                Err(e) => tracing::warn!(worker = self.name, error = %e, "cannot spill"),
            }
        }
        if decision.paused != self.memory.paused {
            self.memory.paused = decision.paused;
            if decision.paused {
                self.memory.pauses += 1;
                tracing::warn!(
                    worker = self.name,
                    used_mib = sample.used >> 20,
                    limit_mib = sample.limit >> 20,
                    threshold = self.thresholds.pause,
                    "memory over the pause threshold: taking no new tasks until it falls"
                );
            } else {
                tracing::info!(
                    worker = self.name,
                    used_mib = sample.used >> 20,
                    "memory back under the pause threshold: taking tasks again"
                );
            }
            self.outbox.heartbeat = Some(self.heartbeat(store));
        }
        if let Some((task, resident)) = decision.stop
            && let Some(key) = self.running.get(&task)
        {
            let error = self.memory_error(key, sample, resident);
            tracing::warn!(worker = self.name, task = key, "{}", error.message);
            self.stopping = Some(Stopping { task });
            self.memory.stopped_tasks += 1;
            fx.stop(task, error);
        }
        self.tell_moved(store, fx);
        self.pump(store, fx);
    }

    fn memory_error(&self, key: &str, sample: &Sample, resident: u64) -> v1::TaskError {
        let mib = |b: u64| b >> 20;
        v1::TaskError {
            kind: "MemoryLimit".into(),
            message: format!(
                "task {key:?} was stopped on worker {:?}: the worker used {} MiB of its {} MiB \
                 limit (over the terminate threshold {:.0}%), its executor holding {} MiB; \
                 stopped before the kernel could OOM-kill the worker. Give workers more memory \
                 or make the task's pieces (chunks, partitions) smaller",
                self.name,
                mib(sample.used),
                mib(sample.limit),
                self.thresholds.terminate * 100.0,
                mib(resident),
            ),
            worker: self.name.clone(),
            memory: Some(Box::new(v1::MemoryFigures {
                used: sample.used,
                limit: sample.limit,
                threshold: self.thresholds.terminate,
                task_used: resident,
            })),
            ..Default::default()
        }
    }

    /// The heartbeat for now.
    pub fn heartbeat(&self, store: &Store) -> v1::Heartbeat {
        let (stored, spilled) = (
            store.memory_bytes() + store.live_bytes(),
            store.spilled_bytes(),
        );
        v1::Heartbeat {
            memory_used: self.memory.used,
            stored_bytes: stored + spilled,
            spilled_bytes: spilled,
            running: self.running.len() as u32,
            state: if self.memory.paused {
                v1::WorkerState::Paused
            } else {
                v1::WorkerState::Running
            } as i32,
            cpu: 0.0,
            shared_written_bytes: store.written_bytes(),
        }
    }

    /// Messages for the scheduler since the last call, in the order to send them; `now_us`
    /// is now on the session's clock (how long ago each transfer ended is counted from it).
    pub fn take_messages(&mut self, now_us: u64) -> Vec<Out> {
        let mut out = Vec::new();
        if let Some(h) = self.outbox.heartbeat.take() {
            out.push(Out::Heartbeat(h));
        }
        if !self.outbox.finished.is_empty() {
            let tasks = std::mem::take(&mut self.outbox.finished);
            out.push(Out::Finished(v1::TasksFinished { tasks }));
        }
        if !self.outbox.failed.is_empty() {
            let tasks = std::mem::take(&mut self.outbox.failed);
            out.push(Out::Failed(v1::TasksFailed { tasks }));
        }
        if !self.outbox.added.is_empty() {
            let tasks = std::mem::take(&mut self.outbox.added);
            out.push(Out::DataAdded(v1::DataAdded { tasks }));
        }
        if !self.outbox.lost.is_empty() {
            let tasks = std::mem::take(&mut self.outbox.lost);
            out.push(Out::Lost(v1::DataLost { tasks }));
        }
        if !self.outbox.transfers.is_empty() {
            let transfers = std::mem::take(&mut self.outbox.transfers)
                .into_iter()
                .map(|p| v1::Transfer {
                    ended_ago_us: now_us.saturating_sub(p.ended_us),
                    ..p.transfer
                })
                .collect();
            out.push(Out::Transfers(v1::Transfers { transfers }));
        }
        out
    }

    /// Peer transfers dropped so far because too many were pending.
    pub fn transfers_dropped(&self) -> u64 {
        self.outbox.transfers_dropped
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }

    pub fn memory_stats(&self) -> MemoryStats {
        self.memory
    }

    /// Checks the core's invariants (tests call it after every step).
    pub fn sanity_check(&self) {
        for (task, w) in &self.waiting {
            assert!(w.missing > 0, "task {task:x} waits for nothing");
            assert!(
                !self.running.contains_key(task),
                "task {task:x} waits and runs"
            );
        }
        for (input, waiters) in &self.needed_by {
            for t in waiters {
                assert!(
                    self.waiting.contains_key(t),
                    "input {input:x} is needed by {t:x}, which is not waiting"
                );
            }
        }
        for t in &self.builtin_tasks {
            assert!(
                self.running.contains_key(t),
                "builtin task {t:x} is not running"
            );
        }
        assert!(
            self.builtin_tasks.len() <= self.cores,
            "more builtin tasks than cores"
        );
        if let Some(s) = &self.stopping {
            assert!(
                self.running.contains_key(&s.task),
                "stopping a task that is not running"
            );
        }
        for a in &self.ready {
            assert!(
                !self.running.contains_key(&a.task),
                "task {:x} ready and running",
                a.task
            );
        }
        assert!(
            self.outbox.transfers.len() <= MAX_PENDING_TRANSFERS,
            "more pending transfers than the bound"
        );
    }
}

#[cfg(test)]
mod tests;
