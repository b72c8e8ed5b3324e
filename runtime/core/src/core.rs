//! The core's state: task and worker arenas, the key index, the ready queue, and the one
//! function that changes a task's state (`set_state`) so every counter stays consistent.
//! Event handlers live in `reactor.rs`, worker choice in `placement.rs`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashTable};
use smallvec::SmallVec;

use crate::adaptive::GroupSpec;
use crate::comm::Comm;
use crate::ids::{ClientId, PrefixId, TaskId, TaskRef, WorkerId};
use crate::prefix::Prefixes;
use crate::resources::Resources;
use crate::task::{Task, TaskError, TaskState};
use crate::worker::Worker;

/// Tunables of the state machine.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Re-runs allowed after the worker running a task was lost (per task default).
    pub default_max_retries: u32,
    /// Work to keep queued on each core, in microseconds of estimated task time.
    pub target_backlog_us: u64,
    /// Most tasks queued per worker core, however short the tasks.
    pub max_queued_per_core: u32,
    /// Estimated duration of a task before any was measured.
    pub initial_task_duration_us: f64,
    /// Cost of fetching one remote input (latency), for placement.
    pub fetch_latency_us: f64,
    /// Bytes per microsecond between workers, for placement.
    pub bandwidth_bytes_per_us: f64,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            default_max_retries: 3,
            target_backlog_us: 20_000,
            max_queued_per_core: 512,
            initial_task_duration_us: 1_000.0,
            fetch_latency_us: 200.0,
            bandwidth_bytes_per_us: 200.0,
        }
    }
}

/// An entry of the ready queue. Entries of tasks that left `Ready` are skipped when popped.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ReadyEntry {
    pub priority: Reverse<i32>,
    pub order: Reverse<u64>,
    pub task: TaskId,
    pub generation: u32,
}

/// A client session's view in the core.
#[derive(Debug, Default)]
pub struct Client {
    pub name: String,
    /// Serial ranges (first, count) of its submissions, in increasing order.
    pub submissions: Vec<(u64, u64)>,
}

impl Client {
    /// Whether this client submitted the task with this serial.
    pub fn submitted(&self, serial: u64) -> bool {
        let i = self
            .submissions
            .partition_point(|&(first, _)| first <= serial);
        i > 0 && serial < self.submissions[i - 1].0 + self.submissions[i - 1].1
    }
}

/// Counts of tasks per state, kept by `set_state`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub waiting: u64,
    pub ready: u64,
    pub assigned: u64,
    pub memory: u64,
    pub released: u64,
    pub erred: u64,
}

impl StateCounts {
    fn slot(&mut self, state: TaskState) -> &mut u64 {
        match state {
            TaskState::Waiting => &mut self.waiting,
            TaskState::Ready => &mut self.ready,
            TaskState::Assigned(_) => &mut self.assigned,
            TaskState::Memory(_) => &mut self.memory,
            TaskState::Released => &mut self.released,
            TaskState::Erred => &mut self.erred,
        }
    }

    /// Tasks that still have to run.
    pub fn unfinished(&self) -> u64 {
        self.waiting + self.ready + self.assigned
    }
}

/// What the dashboard and reports show of one task prefix. `counts` are of the live task
/// records; `done` counts finishes since the prefix last had no live task (so a new graph's
/// progress starts from zero); the totals never reset.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefixStats {
    pub counts: StateCounts,
    pub done: u64,
    pub finished_total: u64,
    pub duration_us_total: u64,
    pub bytes_total: u64,
}

/// The scheduling state machine. No async, no I/O, no clock.
pub struct Core {
    pub(crate) config: CoreConfig,
    tasks: Vec<Option<Task>>,
    generations: Vec<u32>,
    free_slots: Vec<TaskId>,
    key_index: HashTable<TaskId>,
    hasher: DefaultHashBuilder,
    pub(crate) ready: BinaryHeap<ReadyEntry>,
    pub(crate) workers: Vec<Option<Worker>>,
    pub(crate) clients: Vec<Option<Client>>,
    /// Why erred tasks failed.
    pub(crate) errors: HashMap<TaskId, Arc<TaskError>>,
    /// Causes of each loss of a task's worker while it ran.
    pub(crate) loss_history: HashMap<TaskId, Vec<crate::loss::WorkerLoss>>,
    /// Workers lost recently, for causes reported after the connection dropped.
    pub(crate) recent_losses: crate::loss::RecentLosses,
    /// Clients beyond `Task::owner` that want a task.
    pub(crate) extra_wanters: HashMap<TaskId, Vec<ClientId>>,
    /// Copies beyond the primary holder in `TaskState::Memory`.
    pub(crate) extra_replicas: HashMap<TaskId, SmallVec<[WorkerId; 2]>>,
    /// Results being copied off retiring workers: task -> (source, target).
    pub(crate) replicating: HashMap<TaskId, (WorkerId, WorkerId)>,
    counts: StateCounts,
    pub(crate) next_order: u64,
    pub(crate) next_graph: u64,
    pub(crate) finished_total: u64,
    pub(crate) task_duration_us: f64,
    /// Task prefixes and their measured durations.
    pub(crate) prefixes: Prefixes,
    /// The prefix of the task in each slot (beside the arena: keeps `Task` small).
    pub(crate) task_prefix: Vec<PrefixId>,
    /// Per prefix (indexed by `PrefixId`): live counts by state and finish totals.
    pub(crate) prefix_stats: Vec<PrefixStats>,
    /// Resources asked by the few tasks that ask for any.
    pub(crate) task_resources: HashMap<TaskId, Arc<Resources>>,
    /// The groups the operator last said it runs (`None`: never said).
    pub(crate) known_groups: Option<Vec<GroupSpec>>,
    /// While a stalled retirement is retried: (task, target that did not answer).
    pub(crate) retire_avoid: Vec<(TaskId, WorkerId)>,
}

impl Core {
    pub fn new(config: CoreConfig) -> Self {
        let task_duration_us = config.initial_task_duration_us;
        Core {
            config,
            tasks: Vec::new(),
            generations: Vec::new(),
            free_slots: Vec::new(),
            key_index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            ready: BinaryHeap::new(),
            workers: Vec::new(),
            clients: Vec::new(),
            errors: HashMap::new(),
            loss_history: HashMap::new(),
            recent_losses: Default::default(),
            extra_wanters: HashMap::new(),
            extra_replicas: HashMap::new(),
            replicating: HashMap::new(),
            counts: StateCounts::default(),
            next_order: 0,
            next_graph: 0,
            finished_total: 0,
            task_duration_us,
            prefixes: Prefixes::default(),
            task_prefix: Vec::new(),
            prefix_stats: Vec::new(),
            task_resources: HashMap::new(),
            known_groups: None,
            retire_avoid: Vec::new(),
        }
    }

    // ---- lookups -------------------------------------------------------------------

    /// The task in this slot. Panics if the slot is empty: callers hold live ids only.
    #[inline]
    pub fn task(&self, id: TaskId) -> &Task {
        self.tasks[id.index()]
            .as_ref()
            .expect("live task ids point to occupied slots")
    }

    #[inline]
    pub(crate) fn task_mut(&mut self, id: TaskId) -> &mut Task {
        self.tasks[id.index()]
            .as_mut()
            .expect("live task ids point to occupied slots")
    }

    /// The live task a reference points to, if it was not forgotten since.
    #[inline]
    pub fn resolve(&self, r: TaskRef) -> Option<&Task> {
        self.tasks
            .get(r.id.index())
            .and_then(Option::as_ref)
            .filter(|_| self.generations[r.id.index()] == r.generation)
    }

    #[inline]
    pub fn task_ref(&self, id: TaskId) -> TaskRef {
        TaskRef {
            id,
            generation: self.generations[id.index()],
        }
    }

    pub fn find_key(&self, key: &str) -> Option<TaskId> {
        let hash = self.hasher.hash_one(key);
        let tasks = &self.tasks;
        self.key_index
            .find(hash, |&id| {
                tasks[id.index()].as_ref().is_some_and(|t| &*t.key == key)
            })
            .copied()
    }

    pub fn worker(&self, id: WorkerId) -> &Worker {
        self.workers[id.index()]
            .as_ref()
            .expect("live worker ids point to connected workers")
    }

    pub(crate) fn worker_mut(&mut self, id: WorkerId) -> &mut Worker {
        self.workers[id.index()]
            .as_mut()
            .expect("live worker ids point to connected workers")
    }

    pub fn find_worker(&self, id: WorkerId) -> Option<&Worker> {
        self.workers.get(id.index()).and_then(Option::as_ref)
    }

    pub fn find_worker_by_name(&self, name: &str) -> Option<WorkerId> {
        self.workers_iter()
            .find(|(_, w)| w.name == name)
            .map(|(id, _)| id)
    }

    pub fn workers_iter(&self) -> impl Iterator<Item = (WorkerId, &Worker)> {
        self.workers
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.as_ref().map(|w| (WorkerId(i as u32), w)))
    }

    pub fn tasks_iter(&self) -> impl Iterator<Item = (TaskId, &Task)> {
        self.tasks
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.as_ref().map(|t| (TaskId(i as u32), t)))
    }

    pub fn counts(&self) -> StateCounts {
        self.counts
    }

    pub fn task_count(&self) -> usize {
        self.tasks.len() - self.free_slots.len()
    }

    pub fn finished_total(&self) -> u64 {
        self.finished_total
    }

    pub fn error_of(&self, id: TaskId) -> Option<&Arc<TaskError>> {
        self.errors.get(&id)
    }

    /// The resources a task asks for (`None`: any worker will do).
    pub fn resources_of(&self, id: TaskId) -> Option<&Resources> {
        if self.task_resources.is_empty() {
            return None; // the common case: no hashing on the hot paths
        }
        self.task_resources.get(&id).map(|r| &**r)
    }

    /// The name of a task's prefix (Dask's `key_split` of its key).
    pub fn prefix_name(&self, id: TaskId) -> &str {
        self.prefixes.name(self.task_prefix[id.index()])
    }

    /// The measured average duration of a prefix's tasks, in microseconds.
    /// The prefix a live task belongs to.
    pub fn prefix_of(&self, id: TaskId) -> PrefixId {
        self.task_prefix[id.index()]
    }

    /// Every prefix seen, with its counts and totals.
    pub fn prefix_stats(&self) -> impl Iterator<Item = (&str, &PrefixStats)> {
        self.prefix_stats
            .iter()
            .enumerate()
            .map(|(i, s)| (self.prefixes.name(PrefixId(i as u32)), s))
    }

    pub fn prefix_duration_us(&self, name: &str) -> Option<f64> {
        self.prefixes.duration_us(self.prefixes.find(name)?)
    }

    /// Records the groups the operator runs: submissions asking for resources no group
    /// offers are refused from now on.
    pub fn set_known_groups(&mut self, groups: Vec<GroupSpec>) {
        self.known_groups = Some(groups);
    }

    pub fn client_count(&self) -> usize {
        self.clients.iter().flatten().count()
    }

    /// Holders of a task's result: the primary, then replicas.
    pub fn holders(&self, id: TaskId) -> SmallVec<[WorkerId; 2]> {
        let mut out = SmallVec::new();
        if let TaskState::Memory(w) = self.task(id).state {
            out.push(w);
            if let Some(extra) = self.extra_replicas.get(&id) {
                out.extend(extra.iter().copied());
            }
        }
        out
    }

    /// The serial to name a task by to this client, when it submitted the task.
    pub(crate) fn serial_for(&self, client: ClientId, id: TaskId) -> Option<u64> {
        let serial = self.task(id).order;
        self.clients
            .get(client.index())
            .and_then(Option::as_ref)
            .filter(|c| c.submitted(serial))
            .map(|_| serial)
    }

    /// Clients that want a task.
    pub(crate) fn wanters(&self, id: TaskId) -> SmallVec<[ClientId; 2]> {
        let mut out = SmallVec::new();
        let task = self.task(id);
        if let Some(owner) = task.owner() {
            out.push(owner);
        }
        if let Some(extra) = self.extra_wanters.get(&id) {
            out.extend(extra.iter().copied());
        }
        out
    }

    // ---- arena -------------------------------------------------------------------

    /// Puts a task in a free slot (or a new one) and indexes its key.
    pub(crate) fn insert_task(&mut self, task: Task) -> TaskId {
        let id = match self.free_slots.pop() {
            Some(id) => id,
            None => {
                self.tasks.push(None);
                self.generations.push(0);
                self.task_prefix.push(PrefixId(0));
                TaskId((self.tasks.len() - 1) as u32)
            }
        };
        *self.counts.slot(task.state) += 1;
        let prefix = self.prefixes.intern_key(&task.key);
        self.task_prefix[id.index()] = prefix;
        if self.prefix_stats.len() <= prefix.index() {
            self.prefix_stats
                .resize(prefix.index() + 1, PrefixStats::default());
        }
        let stats = &mut self.prefix_stats[prefix.index()];
        if stats.counts == StateCounts::default() {
            stats.done = 0;
        }
        *stats.counts.slot(task.state) += 1;
        let hash = self.hasher.hash_one(&*task.key);
        self.tasks[id.index()] = Some(task);
        let (tasks, hasher) = (&self.tasks, &self.hasher);
        self.key_index.insert_unique(hash, id, |&other| {
            hasher.hash_one(tasks[other.index()].as_ref().map_or("", |t| &*t.key))
        });
        id
    }

    /// Removes a task record (the caller has settled its data and dependents).
    pub(crate) fn remove_task(&mut self, id: TaskId) -> Option<Task> {
        let task = self.tasks.get_mut(id.index())?.take()?;
        let hash = self.hasher.hash_one(&*task.key);
        if let Ok(entry) = self.key_index.find_entry(hash, |&other| other == id) {
            entry.remove();
        }
        *self.counts.slot(task.state) -= 1;
        *self.prefix_stats[self.task_prefix[id.index()].index()]
            .counts
            .slot(task.state) -= 1;
        self.generations[id.index()] = self.generations[id.index()].wrapping_add(1);
        self.free_slots.push(id);
        self.errors.remove(&id);
        self.loss_history.remove(&id);
        self.extra_wanters.remove(&id);
        self.extra_replicas.remove(&id);
        self.replicating.remove(&id);
        if !self.task_resources.is_empty() {
            self.task_resources.remove(&id);
        }
        Some(task)
    }

    // ---- transitions ---------------------------------------------------------------

    /// The one place a task's state changes. Keeps state counts, worker load and stored
    /// bytes, and the `pending_dependents` of its dependencies consistent; releases the data
    /// of dependencies nobody needs any more.
    pub(crate) fn set_state(&mut self, id: TaskId, new: TaskState, comm: &mut impl Comm) {
        let old = self.task(id).state;
        if old == new {
            return;
        }
        *self.counts.slot(old) -= 1;
        *self.counts.slot(new) += 1;
        let prefix = &mut self.prefix_stats[self.task_prefix[id.index()].index()].counts;
        *prefix.slot(old) -= 1;
        *prefix.slot(new) += 1;
        let size = self.task(id).size;
        match old {
            TaskState::Assigned(w) => self.worker_mut(w).assigned -= 1,
            TaskState::Memory(w) => {
                let holders = self.holders(id);
                for h in holders {
                    let worker = self.worker_mut(h);
                    worker.stored_tasks -= 1;
                    worker.stored_bytes -= size;
                }
                debug_assert!(w == self.holders(id)[0]);
                self.extra_replicas.remove(&id);
            }
            _ => {}
        }
        match new {
            TaskState::Assigned(w) => self.worker_mut(w).assigned += 1,
            TaskState::Memory(w) => {
                let worker = self.worker_mut(w);
                worker.stored_tasks += 1;
                worker.stored_bytes += size;
            }
            TaskState::Ready => {
                let t = self.task(id);
                let entry = ReadyEntry {
                    priority: Reverse(t.priority),
                    order: Reverse(t.order),
                    task: id,
                    generation: self.generations[id.index()],
                };
                self.ready.push(entry);
            }
            _ => {}
        }
        if new != TaskState::Waiting {
            self.task_mut(id).waiting_deps = 0;
        }
        self.task_mut(id).state = new;
        if old.is_unfinished() != new.is_unfinished() {
            let deps = std::mem::take(&mut self.task_mut(id).deps);
            for &d in deps.iter() {
                let dep = self.task_mut(d);
                if new.is_unfinished() {
                    dep.pending_dependents += 1;
                } else {
                    dep.pending_dependents -= 1;
                    if dep.pending_dependents == 0 {
                        self.release_if_unneeded(d, comm);
                    }
                }
            }
            self.task_mut(id).deps = deps;
        }
    }

    /// Frees a finished task's data when no client and no unfinished dependent needs it.
    pub(crate) fn release_if_unneeded(&mut self, id: TaskId, comm: &mut impl Comm) {
        let task = self.task(id);
        if task.data_needed() || !matches!(task.state, TaskState::Memory(_)) {
            return;
        }
        let r = self.task_ref(id);
        for w in self.holders(id) {
            comm.release_data(w, r);
        }
        self.set_state(id, TaskState::Released, comm);
    }

    /// Adds a replica holder of a task in memory.
    pub(crate) fn add_replica(&mut self, id: TaskId, worker: WorkerId) {
        if self.holders(id).contains(&worker) {
            return;
        }
        let size = self.task(id).size;
        self.extra_replicas.entry(id).or_default().push(worker);
        let w = self.worker_mut(worker);
        w.stored_tasks += 1;
        w.stored_bytes += size;
    }

    /// Drops one holder of a task in memory; returns false when it was the last one (the
    /// caller must then treat the data as lost).
    pub(crate) fn drop_holder(&mut self, id: TaskId, worker: WorkerId) -> bool {
        let TaskState::Memory(primary) = self.task(id).state else {
            return false;
        };
        let size = self.task(id).size;
        let Some(extra) = self.extra_replicas.get_mut(&id) else {
            return false;
        };
        if primary == worker {
            let new_primary = extra.remove(0);
            if extra.is_empty() {
                self.extra_replicas.remove(&id);
            }
            self.task_mut(id).state = TaskState::Memory(new_primary);
        } else if let Some(pos) = extra.iter().position(|&w| w == worker) {
            extra.remove(pos);
            if extra.is_empty() {
                self.extra_replicas.remove(&id);
            }
        } else {
            return true;
        }
        let w = self.worker_mut(worker);
        w.stored_tasks -= 1;
        w.stored_bytes -= size;
        true
    }

    // ---- invariants ----------------------------------------------------------------

    /// Cross-checks every invariant; tests call it after each step. Returns the first
    /// violation found.
    pub fn sanity_check(&self) -> Result<(), String> {
        let mut counts = StateCounts::default();
        let mut assigned = vec![0u32; self.workers.len()];
        let mut stored = vec![(0u64, 0u64); self.workers.len()];
        for (id, t) in self.tasks_iter() {
            *counts.slot(t.state) += 1;
            if self.find_key(&t.key) != Some(id) {
                return Err(format!("task {:?} is not in the key index", t.key));
            }
            let mut waiting = 0;
            for &d in t.deps.iter() {
                let dep = self
                    .tasks
                    .get(d.index())
                    .and_then(Option::as_ref)
                    .ok_or_else(|| format!("task {:?} depends on a forgotten task", t.key))?;
                if !matches!(dep.state, TaskState::Memory(_)) {
                    waiting += 1;
                }
                if !dep.dependents.contains(&self.task_ref(id)) {
                    return Err(format!(
                        "{:?} is missing from dependents of {:?}",
                        t.key, dep.key
                    ));
                }
                if t.state.is_unfinished() && dep.state == TaskState::Released {
                    return Err(format!(
                        "unfinished {:?} depends on {:?}, released and not recomputing",
                        t.key, dep.key
                    ));
                }
            }
            match t.state {
                TaskState::Waiting if waiting == 0 || t.waiting_deps != waiting => {
                    return Err(format!(
                        "waiting task {:?} counts {} missing deps, has {waiting}",
                        t.key, t.waiting_deps
                    ));
                }
                TaskState::Ready if waiting != 0 => {
                    return Err(format!("ready task {:?} has {waiting} missing deps", t.key));
                }
                TaskState::Assigned(w) => assigned[w.index()] += 1,
                TaskState::Memory(_) => {
                    if !t.data_needed() {
                        return Err(format!("{:?} is in memory but nobody needs it", t.key));
                    }
                    for h in self.holders(id) {
                        stored[h.index()].0 += 1;
                        stored[h.index()].1 += t.size;
                    }
                }
                TaskState::Erred if !self.errors.contains_key(&id) => {
                    return Err(format!("erred task {:?} has no error", t.key));
                }
                _ => {}
            }
            let mut pending = 0;
            let mut alive = 0;
            for r in t.dependents.as_slice() {
                if let Some(dependent) = self.resolve(*r) {
                    alive += 1;
                    if dependent.state.is_unfinished() {
                        pending += 1;
                    }
                }
            }
            if pending != t.pending_dependents || alive != t.alive_dependents {
                return Err(format!(
                    "{:?}: pending/alive dependents {}/{} recorded, {pending}/{alive} found",
                    t.key, t.pending_dependents, t.alive_dependents
                ));
            }
            let wanters = self.wanters(id).len();
            if wanters != usize::from(t.wanted) {
                return Err(format!(
                    "{:?}: wanted {} but {wanters} wanters",
                    t.key, t.wanted
                ));
            }
            if t.forgettable() && !t.state.is_unfinished() {
                return Err(format!("{:?} should have been forgotten", t.key));
            }
        }
        if let Some(id) = self.task_resources.keys().find(|id| {
            self.tasks
                .get(id.index())
                .and_then(Option::as_ref)
                .is_none()
        }) {
            return Err(format!("resources recorded for forgotten task slot {id}"));
        }
        if counts != self.counts {
            return Err(format!(
                "state counts {:?} != recount {counts:?}",
                self.counts
            ));
        }
        let mut by_prefix = vec![StateCounts::default(); self.prefix_stats.len()];
        for (id, t) in self.tasks_iter() {
            *by_prefix[self.task_prefix[id.index()].index()].slot(t.state) += 1;
        }
        for (p, (stats, recount)) in self.prefix_stats.iter().zip(&by_prefix).enumerate() {
            if stats.counts != *recount {
                return Err(format!(
                    "prefix {} counts {:?} != recount {recount:?}",
                    self.prefixes.name(PrefixId(p as u32)),
                    stats.counts
                ));
            }
        }
        for (wid, w) in self.workers_iter() {
            if w.assigned != assigned[wid.index()] {
                return Err(format!(
                    "worker {} counts {} assigned, has {}",
                    w.name,
                    w.assigned,
                    assigned[wid.index()]
                ));
            }
            if (w.stored_tasks, w.stored_bytes) != stored[wid.index()] {
                return Err(format!(
                    "worker {} counts {:?} stored, holds {:?}",
                    w.name,
                    (w.stored_tasks, w.stored_bytes),
                    stored[wid.index()]
                ));
            }
        }
        let ready_entries = self
            .ready
            .iter()
            .filter(|e| {
                self.tasks[e.task.index()].as_ref().is_some_and(|t| {
                    self.generations[e.task.index()] == e.generation && t.state == TaskState::Ready
                })
            })
            .map(|e| e.task)
            .collect::<std::collections::HashSet<_>>();
        if ready_entries.len() as u64 != self.counts.ready {
            return Err(format!(
                "{} ready tasks but {} in the ready queue",
                self.counts.ready,
                ready_entries.len()
            ));
        }
        Ok(())
    }
}
