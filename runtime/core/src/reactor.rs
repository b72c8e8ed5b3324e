//! Event handlers: what happens when a graph arrives, a task finishes or fails, a worker
//! joins, vanishes or retires, a client releases keys. Each handler mutates the core and
//! reports messages through `Comm`; none of them blocks, reads a clock or does I/O.

use std::sync::Arc;

use smallvec::SmallVec;

use crate::comm::{Comm, InputLocation};
use crate::core::{Client, Core};
use crate::graph::{GraphError, KeyList, NewTask, check_submission};
use crate::ids::{ClientId, TaskId, TaskRef, WorkerId};
use crate::loss::{Loss, WorkerLoss};
use crate::resources::Resources;
use crate::task::{BuiltinOp, NO_CLIENT, Payload, Task, TaskError, TaskState};
use crate::worker::{Worker, WorkerState};

/// What a graph submission added.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct GraphSummary {
    pub graph_id: u64,
    /// Tasks created.
    pub new_tasks: u64,
    /// Keys of the submission the scheduler already held (reused as they are).
    pub reused: u64,
    /// Task `i` of the submission has serial `first_serial + i` (reused keys keep theirs).
    pub first_serial: u64,
}

/// Errors of worker events (not of tasks).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkerEventError {
    #[error(
        "a worker named {name:?} is already connected; worker names must be unique \
         (on Kubernetes the pod name is used)"
    )]
    DuplicateName { name: String },
    #[error("worker {worker} is not connected")]
    UnknownWorker { worker: WorkerId },
}

/// What a worker's loss did to the work.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LossReport {
    pub worker: String,
    /// Tasks that were running there and will run again.
    pub rerun: usize,
    /// Results that were only there and will be recomputed.
    pub recomputed: usize,
    /// Tasks that failed for good (retries exhausted).
    pub failed: Vec<String>,
}

/// How a worker's report about a task was taken.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Report {
    Applied,
    /// About a task the worker no longer owns (cancelled, forgotten, re-run elsewhere).
    Stale,
}

impl Core {
    // ---- clients -------------------------------------------------------------------

    pub fn on_client_connected(&mut self, name: &str) -> ClientId {
        let client = Client {
            name: name.to_string(),
            submissions: Vec::new(),
        };
        if let Some(pos) = self.clients.iter().position(Option::is_none) {
            self.clients[pos] = Some(client);
            ClientId(pos as u32)
        } else {
            self.clients.push(Some(client));
            ClientId((self.clients.len() - 1) as u32)
        }
    }

    /// Releases everything the client wanted (cancelling what nobody else needs).
    pub fn on_client_disconnected(&mut self, client: ClientId, comm: &mut impl Comm) {
        let owned: Vec<TaskId> = self
            .tasks_iter()
            .filter(|(id, t)| {
                t.owner() == Some(client)
                    || self
                        .extra_wanters
                        .get(id)
                        .is_some_and(|w| w.contains(&client))
            })
            .map(|(id, _)| id)
            .collect();
        for id in owned {
            self.unwant(id, client, comm);
        }
        if let Some(slot) = self.clients.get_mut(client.index()) {
            *slot = None;
        }
    }

    /// The client no longer wants these keys. Returns how many it wanted.
    pub fn on_release(&mut self, client: ClientId, keys: &[String], comm: &mut impl Comm) -> usize {
        let mut released = 0;
        for key in keys {
            if let Some(id) = self.find_key(key)
                && self.wanters(id).contains(&client)
            {
                released += 1;
                self.unwant(id, client, comm);
            }
        }
        released
    }

    /// Like release, and the client is told the unfinished keys were cancelled.
    pub fn on_cancel(&mut self, client: ClientId, keys: &[String], comm: &mut impl Comm) -> usize {
        let error = Arc::new(TaskError {
            kind: "Cancelled".into(),
            message: "cancelled by the client".into(),
            detail: String::new(),
            worker: String::new(),
            origin_key: None,
            ..Default::default()
        });
        let mut cancelled = 0;
        for key in keys {
            let Some(id) = self.find_key(key) else {
                continue;
            };
            if !self.wanters(id).contains(&client) {
                continue;
            }
            if self.task(id).state.is_unfinished() {
                cancelled += 1;
                comm.key_failed(client, key, &error);
            }
            self.unwant(id, client, comm);
        }
        cancelled
    }

    fn add_wanter(&mut self, id: TaskId, client: ClientId, comm: &mut impl Comm) {
        if self.wanters(id).contains(&client) {
            return;
        }
        let task = self.task_mut(id);
        task.wanted += 1;
        if task.owner().is_none() {
            task.owner = client;
        } else {
            self.extra_wanters.entry(id).or_default().push(client);
        }
        let task = self.task(id);
        match task.state {
            TaskState::Memory(_) => {
                let serial = self.serial_for(client, id);
                comm.key_finished(client, &task.key, serial, task.size);
            }
            TaskState::Erred => {
                if let Some(error) = self.errors.get(&id) {
                    comm.key_failed(client, &task.key, error);
                }
            }
            TaskState::Released => self.make_runnable(id, comm),
            _ => {}
        }
    }

    fn unwant(&mut self, id: TaskId, client: ClientId, comm: &mut impl Comm) {
        let task = self.task_mut(id);
        if task.owner() == Some(client) {
            task.owner = NO_CLIENT;
        } else if let Some(extra) = self.extra_wanters.get_mut(&id) {
            let Some(pos) = extra.iter().position(|&c| c == client) else {
                return;
            };
            extra.remove(pos);
        } else {
            return;
        }
        let task = self.task_mut(id);
        task.wanted -= 1;
        if task.owner().is_none()
            && let Some(extra) = self.extra_wanters.get_mut(&id)
        {
            let next = extra.remove(0);
            if extra.is_empty() {
                self.extra_wanters.remove(&id);
            }
            self.task_mut(id).owner = next;
        }
        self.release_if_unneeded(id, comm);
        self.forget_if_unneeded(id, comm);
    }

    // ---- graphs --------------------------------------------------------------------

    /// Adds a graph: accepted whole, or refused whole with nothing changed.
    pub fn on_graph(
        &mut self,
        client: ClientId,
        tasks: Vec<NewTask>,
        comm: &mut impl Comm,
    ) -> Result<GraphSummary, GraphError> {
        check_submission(&tasks)?;
        self.check_resources(&tasks)?;
        for task in &tasks {
            let missing: Vec<&str> = task
                .existing()
                .iter()
                .filter(|k| self.find_key(k).is_none())
                .map(|k| &**k)
                .collect();
            if !missing.is_empty() {
                return Err(GraphError::UnknownDependency {
                    key: task.key.to_string(),
                    missing: KeyList::collect(missing.into_iter()),
                });
            }
        }
        // Nothing can fail from here on.
        self.next_graph += 1;
        let graph_id = self.next_graph;
        // Staged tasks give up their key and payload to the new records here, and their
        // dependencies below, so the submission is never held twice.
        let mut tasks = tasks;
        let first_serial = self.next_order;
        self.next_order += tasks.len() as u64;
        if let Some(Some(c)) = self.clients.get_mut(client.index()) {
            c.submissions.push((first_serial, tasks.len() as u64));
        }
        let mut ids: Vec<TaskId> = Vec::with_capacity(tasks.len());
        let mut is_new: Vec<bool> = Vec::with_capacity(tasks.len());
        let mut reused = 0u64;
        for (ordinal, t) in tasks.iter_mut().enumerate() {
            if let Some(id) = self.find_key(&t.key) {
                ids.push(id);
                is_new.push(false);
                reused += 1;
                continue;
            }
            let max_retries = t
                .max_retries
                .map_or(self.config.default_max_retries, u32::from);
            let order = first_serial + ordinal as u64;
            let id = self.insert_task(Task {
                key: std::mem::take(&mut t.key),
                deps: Box::new([]),
                dependents: Default::default(),
                payload: std::mem::replace(&mut t.payload, Payload::Builtin(BuiltinOp::Noop)),
                priority: t.priority,
                order,
                size: 0,
                state: TaskState::Released,
                waiting_deps: 0,
                pending_dependents: 0,
                alive_dependents: 0,
                owner: NO_CLIENT,
                wanted: 0,
                failures: 0,
                max_retries: max_retries.min(u32::from(u8::MAX)) as u8,
            });
            if let Some(resources) = t.resources.take().filter(|r| !r.is_empty()) {
                self.task_resources.insert(id, Arc::new(*resources));
            }
            ids.push(id);
            is_new.push(true);
        }
        let wanted: Vec<bool> = tasks.iter().map(|t| t.wanted).collect();
        for (i, t) in tasks.iter_mut().enumerate() {
            if !is_new[i] {
                continue;
            }
            let mut resolved: Vec<TaskId> = t.deps.iter().map(|&d| ids[d as usize]).collect();
            resolved.extend(t.existing().iter().filter_map(|k| self.find_key(k)));
            t.deps = Box::new([]);
            dedup_keep_order(&mut resolved);
            let me = self.task_ref(ids[i]);
            for &d in &resolved {
                let dep = self.task_mut(d);
                dep.dependents.push(me);
                dep.alive_dependents += 1;
            }
            self.task_mut(ids[i]).deps = resolved.into_boxed_slice();
        }
        drop(tasks);
        for (i, &id) in ids.iter().enumerate() {
            if wanted[i] {
                self.add_wanter(id, client, comm);
            }
        }
        for &id in &ids {
            if self.task(id).state == TaskState::Released {
                self.make_runnable(id, comm);
            }
        }
        Ok(GraphSummary {
            graph_id,
            new_tasks: ids.len() as u64 - reused,
            reused,
            first_serial,
        })
    }

    /// Refuses a submission with a task asking for resources no known group offers: the
    /// groups the operator last named, else the connected workers; with neither, the task
    /// waits for a worker that offers them.
    fn check_resources(&self, tasks: &[NewTask]) -> Result<(), GraphError> {
        let offers: Vec<(String, Resources)> = match &self.known_groups {
            Some(groups) => groups
                .iter()
                .map(|g| (format!("group {:?}", g.name), g.resources.clone()))
                .collect(),
            None => self
                .workers_iter()
                .map(|(_, w)| {
                    (
                        format!("worker {:?} of group {:?}", w.name, w.group),
                        w.resources.clone(),
                    )
                })
                .collect(),
        };
        if offers.is_empty() {
            return Ok(());
        }
        for task in tasks {
            let Some(asked) = task.resources.as_deref().filter(|r| !r.is_empty()) else {
                continue;
            };
            if offers.iter().any(|(_, offer)| offer.satisfies(asked)) {
                continue;
            }
            let offered: Vec<String> = offers
                .iter()
                .map(|(who, offer)| format!("{who} offers {offer}"))
                .collect();
            return Err(GraphError::UnsatisfiableResources {
                key: task.key.to_string(),
                asked: asked.to_string(),
                offered: offered.join("; "),
            });
        }
        Ok(())
    }

    /// Makes a task without data (and, recursively, its dependencies without data) run
    /// again. A task that is unfinished, in memory or erred is left alone.
    pub(crate) fn make_runnable(&mut self, start: TaskId, comm: &mut impl Comm) {
        let mut work = vec![start];
        while let Some(id) = work.pop() {
            if self.task(id).state != TaskState::Released {
                continue;
            }
            self.set_state(id, TaskState::Waiting, comm);
            self.evaluate_deps(id, &mut work, comm);
        }
    }

    /// For a task just set `Waiting`: counts missing dependencies, queues released ones for
    /// recomputation, fails it if one failed, makes it `Ready` if none is missing.
    fn evaluate_deps(&mut self, id: TaskId, work: &mut Vec<TaskId>, comm: &mut impl Comm) {
        let mut missing = 0u32;
        let mut failed_dep = None;
        for &d in self.task(id).deps.iter() {
            match self.task(d).state {
                TaskState::Memory(_) => {}
                TaskState::Erred => failed_dep = Some(d),
                TaskState::Released => {
                    missing += 1;
                    work.push(d);
                }
                _ => missing += 1,
            }
        }
        if let Some(d) = failed_dep {
            let error = self.errors.get(&d).cloned().unwrap_or_else(|| {
                Arc::new(TaskError {
                    kind: "DependencyFailed".into(),
                    message: "a dependency failed".into(),
                    detail: String::new(),
                    worker: String::new(),
                    origin_key: None,
                    ..Default::default()
                })
            });
            let origin = error
                .origin_key
                .clone()
                .unwrap_or_else(|| self.task(d).key.to_string());
            self.fail_task(
                id,
                Arc::new(TaskError {
                    origin_key: Some(origin),
                    ..(*error).clone()
                }),
                comm,
            );
            return;
        }
        if missing == 0 {
            self.set_state(id, TaskState::Ready, comm);
        } else {
            self.task_mut(id).waiting_deps = missing;
        }
    }

    /// Puts an unfinished task back to waiting (its worker was lost, or an input was).
    fn rerun(&mut self, id: TaskId, comm: &mut impl Comm) {
        self.set_state(id, TaskState::Waiting, comm);
        let mut work = Vec::new();
        self.evaluate_deps(id, &mut work, comm);
        for d in work {
            self.make_runnable(d, comm);
        }
    }

    /// Fails a task and, with the same cause, every unfinished task depending on it.
    fn fail_task(&mut self, id: TaskId, error: Arc<TaskError>, comm: &mut impl Comm) {
        let root_key = error
            .origin_key
            .clone()
            .unwrap_or_else(|| self.task(id).key.to_string());
        let derived = Arc::new(TaskError {
            origin_key: Some(root_key),
            ..(*error).clone()
        });
        let mut work = vec![(id, error)];
        let mut doomed = Vec::new();
        while let Some((id, error)) = work.pop() {
            if self.task(id).state == TaskState::Erred {
                continue;
            }
            if let TaskState::Assigned(w) = self.task(id).state {
                comm.cancel_task(w, self.task_ref(id));
            }
            self.set_state(id, TaskState::Erred, comm);
            for client in self.wanters(id) {
                comm.key_failed(client, &self.task(id).key, &error);
            }
            self.errors.insert(id, error);
            let dependents: SmallVec<[TaskRef; 4]> = self.task(id).dependents.as_slice().into();
            for r in dependents {
                if self.resolve(r).is_some_and(|t| t.state.is_unfinished()) {
                    work.push((r.id, Arc::clone(&derived)));
                }
            }
            doomed.push(id);
        }
        for id in doomed {
            self.forget_if_unneeded(id, comm);
        }
    }

    /// Forgets a task nobody refers to, and then its dependencies nobody refers to.
    fn forget_if_unneeded(&mut self, start: TaskId, comm: &mut impl Comm) {
        let mut work = vec![self.task_ref(start)];
        while let Some(r) = work.pop() {
            let Some(task) = self.resolve(r) else {
                continue;
            };
            if !task.forgettable() {
                continue;
            }
            let id = r.id;
            match task.state {
                TaskState::Assigned(w) => comm.cancel_task(w, r),
                TaskState::Memory(_) => {
                    for w in self.holders(id) {
                        comm.release_data(w, r);
                    }
                }
                _ => {}
            }
            self.set_state(id, TaskState::Released, comm);
            let Some(task) = self.remove_task(id) else {
                continue;
            };
            for &d in task.deps.iter() {
                let me = r;
                let dep = self.task_mut(d);
                dep.alive_dependents -= 1;
                if dep.dependents.len() > 2 * dep.alive_dependents as usize + 8 {
                    let mut list = std::mem::take(&mut dep.dependents);
                    list.retain(|x| *x != me && self.resolve(*x).is_some());
                    self.task_mut(d).dependents = list;
                }
                let dep = self.task(d);
                if dep.forgettable() {
                    work.push(self.task_ref(d));
                }
            }
        }
    }

    // ---- workers -------------------------------------------------------------------

    /// A worker joined. `group` "" means the default group.
    pub fn on_worker_added(
        &mut self,
        name: &str,
        cores: u32,
        memory_limit: u64,
        data_address: &str,
        group: &str,
        resources: Resources,
    ) -> Result<WorkerId, WorkerEventError> {
        if self.find_worker_by_name(name).is_some() {
            return Err(WorkerEventError::DuplicateName {
                name: name.to_string(),
            });
        }
        let mut worker = Worker::new(
            name.to_string(),
            cores,
            memory_limit,
            data_address.to_string(),
        );
        if !group.is_empty() {
            worker.group = group.to_string();
        }
        worker.resources = resources;
        self.workers.push(Some(worker));
        Ok(WorkerId((self.workers.len() - 1) as u32))
    }

    pub fn on_worker_heartbeat(&mut self, worker: WorkerId, memory_used: u64, spilled: u64) {
        if let Some(Some(w)) = self.workers.get_mut(worker.index()) {
            w.memory_used = memory_used;
            w.spilled_bytes = spilled;
        }
    }

    /// The worker paused (its memory is over its pause threshold: it takes no new tasks,
    /// they are placed elsewhere) or resumed. Returns whether that changed anything; after
    /// a resume the caller schedules.
    pub fn on_worker_paused(&mut self, worker: WorkerId, paused: bool) -> bool {
        match self.workers.get_mut(worker.index()) {
            Some(Some(w)) if w.paused != paused => {
                w.paused = paused;
                true
            }
            _ => false,
        }
    }

    /// A worker vanished: its running tasks run again elsewhere (up to their retry limit)
    /// and the results only it held are recomputed from lineage when still needed.
    pub fn on_worker_lost(
        &mut self,
        worker: WorkerId,
        loss: &Loss,
        comm: &mut impl Comm,
    ) -> Result<LossReport, WorkerEventError> {
        let name = self
            .find_worker(worker)
            .ok_or(WorkerEventError::UnknownWorker { worker })?
            .name
            .clone();
        let mut report = LossReport {
            worker: name.clone(),
            ..LossReport::default()
        };
        let mut held = Vec::new();
        let mut running = Vec::new();
        for (id, t) in self.tasks_iter() {
            match t.state {
                TaskState::Assigned(w) if w == worker => running.push(id),
                TaskState::Memory(_) if self.holders(id).contains(&worker) => held.push(id),
                _ => {}
            }
        }
        let running_keys = running
            .iter()
            .map(|&id| (self.task_ref(id), self.task(id).key.clone()))
            .collect();
        self.recent_losses.push(name.clone(), running_keys);
        for id in held {
            if self.lose_data(id, worker, comm) {
                report.recomputed += 1;
            }
        }
        for id in running {
            if self.task(id).state != TaskState::Assigned(worker) {
                continue;
            }
            let task = self.task_mut(id);
            task.failures = task.failures.saturating_add(1);
            let (failures, max_retries) = (task.failures, task.max_retries);
            self.loss_history.entry(id).or_default().push(WorkerLoss {
                worker: name.clone(),
                loss: loss.clone(),
            });
            if failures > max_retries {
                let key = self.task(id).key.to_string();
                let losses = self.loss_history.get(&id).map_or(&[][..], Vec::as_slice);
                let error = Arc::new(crate::loss::exhausted(&key, losses, max_retries));
                report.failed.push(key);
                self.fail_task(id, error, comm);
            } else {
                report.rerun += 1;
                self.rerun(id, comm);
            }
        }
        let was_retiring = self.worker(worker).state == WorkerState::Retiring;
        self.workers[worker.index()] = None;
        if was_retiring {
            comm.retire_done(
                worker,
                &name,
                Err(format!("worker was lost: {}", loss.describe())),
            );
        }
        self.retarget_replications(worker, comm);
        Ok(report)
    }

    /// Drops `worker`'s copy of a task's result. When it was the last copy and the data is
    /// still needed, the task is recomputed; returns true then.
    fn lose_data(&mut self, id: TaskId, worker: WorkerId, comm: &mut impl Comm) -> bool {
        if self.drop_holder(id, worker) {
            return false;
        }
        self.set_state(id, TaskState::Released, comm);
        let dependents: SmallVec<[TaskRef; 4]> = self.task(id).dependents.as_slice().into();
        for r in dependents {
            let Some(t) = self.resolve(r) else { continue };
            match t.state {
                TaskState::Ready => {
                    self.set_state(r.id, TaskState::Waiting, comm);
                    let missing = self
                        .task(r.id)
                        .deps
                        .iter()
                        .filter(|&&d| !matches!(self.task(d).state, TaskState::Memory(_)))
                        .count() as u32;
                    self.task_mut(r.id).waiting_deps = missing;
                }
                TaskState::Waiting => self.task_mut(r.id).waiting_deps += 1,
                _ => {}
            }
        }
        if self.task(id).data_needed() {
            self.make_runnable(id, comm);
            true
        } else {
            false
        }
    }

    // ---- task reports --------------------------------------------------------------

    pub fn on_task_finished(
        &mut self,
        worker: WorkerId,
        r: TaskRef,
        size: u64,
        duration_us: u64,
        comm: &mut impl Comm,
    ) -> Report {
        let Some(task) = self.resolve(r) else {
            comm.release_data(worker, r);
            return Report::Stale;
        };
        match task.state {
            TaskState::Assigned(w) if w == worker => {}
            TaskState::Memory(_) if self.holders(r.id).contains(&worker) => return Report::Stale,
            _ => {
                comm.release_data(worker, r);
                return Report::Stale;
            }
        }
        let id = r.id;
        self.task_mut(id).size = size;
        self.set_state(id, TaskState::Memory(worker), comm);
        self.finished_total += 1;
        self.task_duration_us = self.task_duration_us * 0.95 + duration_us as f64 * 0.05;
        let prefix = self.task_prefix[id.index()];
        self.prefixes.observe(prefix, duration_us as f64);
        let stats = &mut self.prefix_stats[prefix.index()];
        stats.done += 1;
        stats.finished_total += 1;
        stats.duration_us_total += duration_us;
        stats.bytes_total += size;
        for client in self.wanters(id) {
            let serial = self.serial_for(client, id);
            comm.key_finished(client, &self.task(id).key, serial, size);
        }
        let task = self.task(id);
        let dependents: SmallVec<[TaskRef; 4]> = task.dependents.as_slice().into();
        for d in dependents {
            if self
                .resolve(d)
                .is_some_and(|t| t.state == TaskState::Waiting)
            {
                let t = self.task_mut(d.id);
                t.waiting_deps -= 1;
                if t.waiting_deps == 0 {
                    self.set_state(d.id, TaskState::Ready, comm);
                }
            }
        }
        self.release_if_unneeded(id, comm);
        self.forget_if_unneeded(id, comm);
        if self.worker(worker).state == WorkerState::Retiring {
            self.progress_retirement(worker, comm);
        }
        Report::Applied
    }

    pub fn on_task_failed(
        &mut self,
        worker: WorkerId,
        r: TaskRef,
        error: TaskError,
        comm: &mut impl Comm,
    ) -> Report {
        if self.resolve(r).map(|t| t.state) != Some(TaskState::Assigned(worker)) {
            return Report::Stale;
        }
        self.fail_task(r.id, Arc::new(error), comm);
        if self
            .find_worker(worker)
            .is_some_and(|w| w.state == WorkerState::Retiring)
        {
            self.progress_retirement(worker, comm);
        }
        Report::Applied
    }

    /// The worker could not get an input of `r` from `tried` (the holder its assignment
    /// named): that copy is treated as lost (recomputed if it was the last), and the task
    /// waits for the input again. Not a failure of the task.
    pub fn on_input_missing(
        &mut self,
        worker: WorkerId,
        r: TaskRef,
        missing: TaskRef,
        tried: WorkerId,
        comm: &mut impl Comm,
    ) -> Report {
        if self.resolve(r).map(|t| t.state) != Some(TaskState::Assigned(worker)) {
            return Report::Stale;
        }
        // Only the copy the worker looked for is gone. When the input has moved since the
        // assignment (recomputed or copied elsewhere), its current copies are intact and
        // the task just runs again with fresh locations.
        let in_memory = matches!(
            self.resolve(missing).map(|t| t.state),
            Some(TaskState::Memory(_))
        );
        if in_memory && self.holders(missing.id).contains(&tried) {
            comm.release_data(tried, missing);
            self.lose_data(missing.id, tried, comm);
        }
        if self.task(r.id).state == TaskState::Assigned(worker) {
            self.rerun(r.id, comm);
        }
        Report::Applied
    }

    // ---- retirement ----------------------------------------------------------------

    /// Starts retiring a worker: it takes no new tasks, its unique results are copied to
    /// other workers, then it is told to shut down (`Comm::retire_done` reports the end).
    pub fn on_retire(
        &mut self,
        worker: WorkerId,
        comm: &mut impl Comm,
    ) -> Result<(), WorkerEventError> {
        let w = self
            .workers
            .get_mut(worker.index())
            .and_then(Option::as_mut)
            .ok_or(WorkerEventError::UnknownWorker { worker })?;
        w.state = WorkerState::Retiring;
        self.progress_retirement(worker, comm);
        Ok(())
    }

    /// A retirement is taking long: the copies still pending (a copy may have failed; the
    /// worker does not say) are asked again, each of another survivor when there is one.
    pub fn on_retire_stalled(&mut self, worker: WorkerId, comm: &mut impl Comm) {
        if self.find_worker(worker).map(|w| w.state) != Some(WorkerState::Retiring) {
            return;
        }
        let mut avoid: Vec<(TaskId, WorkerId)> = Vec::new();
        self.replicating.retain(|&id, &mut (source, target)| {
            if source == worker {
                avoid.push((id, target));
                false
            } else {
                true
            }
        });
        self.worker_mut(worker).pending_replicas = 0;
        self.retire_avoid = avoid;
        self.progress_retirement(worker, comm);
        self.retire_avoid.clear();
    }

    /// A retirement's deadline passed: a worker whose results could not all be moved goes
    /// back to work (nothing is lost) and the retirement is refused with the count.
    pub fn on_retire_deadline(&mut self, worker: WorkerId, deadline_s: f64, comm: &mut impl Comm) {
        if self.find_worker(worker).map(|w| w.state) != Some(WorkerState::Retiring) {
            return;
        }
        let mut left = 0usize;
        self.replicating.retain(|_, &mut (source, _)| {
            if source == worker {
                left += 1;
                false
            } else {
                true
            }
        });
        let unique = self
            .tasks_iter()
            .filter(|(id, t)| {
                t.state == TaskState::Memory(worker) && !self.extra_replicas.contains_key(id)
            })
            .count();
        let running = self.worker(worker).assigned;
        let w = self.worker_mut(worker);
        w.pending_replicas = 0;
        w.state = WorkerState::Active;
        let name = w.name.clone();
        let what = if running > 0 && unique == 0 {
            format!("finish its {running} running tasks")
        } else {
            format!("move {} results", unique.max(left))
        };
        comm.retire_done(
            worker,
            &name,
            Err(format!(
                "could not {what} before the {deadline_s} s deadline; it keeps running                  (retry later, or give it a longer deadline)"
            )),
        );
    }

    /// The worker lost its copies of these results without being asked (the executor
    /// process keeping them died): each copy is dropped, and a result whose last copy it
    /// was is recomputed if it is still needed.
    pub fn on_data_lost(&mut self, worker: WorkerId, tasks: &[TaskRef], comm: &mut impl Comm) {
        for &r in tasks {
            let in_memory = matches!(self.resolve(r).map(|t| t.state), Some(TaskState::Memory(_)));
            if in_memory && self.holders(r.id).contains(&worker) {
                self.lose_data(r.id, worker, comm);
            }
        }
    }

    /// The worker now holds copies of these tasks (asked by `Comm::replicate`).
    pub fn on_data_added(&mut self, worker: WorkerId, tasks: &[TaskRef], comm: &mut impl Comm) {
        let mut sources = Vec::new();
        for &r in tasks {
            if let Some((source, _target)) = self.replicating.remove(&r.id) {
                if let Some(Some(s)) = self.workers.get_mut(source.index()) {
                    s.pending_replicas = s.pending_replicas.saturating_sub(1);
                }
                sources.push(source);
            }
            match self.resolve(r).map(|t| t.state) {
                Some(TaskState::Memory(_)) => self.add_replica(r.id, worker),
                _ => comm.release_data(worker, r),
            }
        }
        sources.sort_unstable();
        sources.dedup();
        for s in sources {
            if self
                .find_worker(s)
                .is_some_and(|w| w.state == WorkerState::Retiring)
            {
                self.progress_retirement(s, comm);
            }
        }
    }

    fn progress_retirement(&mut self, worker: WorkerId, comm: &mut impl Comm) {
        let w = self.worker(worker);
        if w.assigned > 0 || w.pending_replicas > 0 {
            return;
        }
        let unique: Vec<TaskId> = self
            .tasks_iter()
            .filter(|(id, t)| {
                t.state == TaskState::Memory(worker)
                    && !self.extra_replicas.contains_key(id)
                    && !self.replicating.contains_key(id)
            })
            .map(|(id, _)| id)
            .collect();
        if unique.is_empty() {
            let name = self.worker(worker).name.clone();
            comm.shutdown_worker(worker, "retired: its results were moved to other workers");
            comm.retire_done(worker, &name, Ok(()));
            // Its (now replicated) copies are dropped from the records.
            let held: Vec<TaskId> = self
                .tasks_iter()
                .filter(|(id, t)| {
                    matches!(t.state, TaskState::Memory(_)) && self.holders(*id).contains(&worker)
                })
                .map(|(id, _)| id)
                .collect();
            for id in held {
                self.lose_data(id, worker, comm);
            }
            self.workers[worker.index()] = None;
            return;
        }
        // Spread the data over the active workers holding the fewest bytes.
        let mut targets: Vec<(u64, WorkerId)> = self
            .workers_iter()
            .filter(|(_, w)| w.takes_tasks())
            .map(|(id, w)| (w.stored_bytes, id))
            .collect();
        if targets.is_empty() {
            let name = self.worker(worker).name.clone();
            let wanted = unique
                .iter()
                .filter(|&&id| self.task(id).is_wanted())
                .count();
            self.worker_mut(worker).state = WorkerState::Active;
            comm.retire_done(
                worker,
                &name,
                Err(format!(
                    "it holds the only copy of {} results ({wanted} wanted by a client) and                      no other active worker can take them; it keeps running (add a worker                      first)",
                    unique.len()
                )),
            );
            return;
        }
        let mut batches: std::collections::BTreeMap<WorkerId, Vec<InputLocation>> =
            Default::default();
        for &id in &unique {
            targets.sort_unstable();
            // A retried copy goes to another survivor than the one that did not answer.
            let avoided = self
                .retire_avoid
                .iter()
                .find(|(t, _)| *t == id)
                .map(|&(_, w)| w);
            let pick = targets
                .iter()
                .position(|&(_, w)| Some(w) != avoided)
                .unwrap_or(0);
            let (bytes, target) = targets[pick];
            batches.entry(target).or_default().push(InputLocation {
                task: self.task_ref(id),
                worker,
            });
            targets[pick] = (bytes + self.task(id).size.max(1), target);
            self.replicating.insert(id, (worker, target));
        }
        for (target, batch) in &batches {
            comm.replicate(*target, batch);
        }
        self.worker_mut(worker).pending_replicas = unique.len() as u32;
    }

    /// Replications that targeted or came from a lost worker are forgotten, so the retiring
    /// source asks again.
    fn retarget_replications(&mut self, lost: WorkerId, comm: &mut impl Comm) {
        let mut sources = Vec::new();
        self.replicating.retain(|_, (source, target)| {
            if *target == lost || *source == lost {
                sources.push(*source);
                false
            } else {
                true
            }
        });
        sources.sort_unstable();
        sources.dedup();
        for s in sources {
            let pending = self
                .replicating
                .values()
                .filter(|(src, _)| *src == s)
                .count();
            if let Some(Some(w)) = self.workers.get_mut(s.index()) {
                w.pending_replicas = pending as u32;
                if w.state == WorkerState::Retiring {
                    self.progress_retirement(s, comm);
                }
            }
        }
    }
}

/// Removes repeated dependencies, keeping the first of each in place (inputs reach the
/// task in dependency order).
fn dedup_keep_order(deps: &mut Vec<TaskId>) {
    if deps.len() <= 32 {
        let mut i = 0;
        while i < deps.len() {
            if deps[..i].contains(&deps[i]) {
                deps.remove(i);
            } else {
                i += 1;
            }
        }
    } else {
        let mut seen = std::collections::HashSet::with_capacity(deps.len());
        deps.retain(|d| seen.insert(*d));
    }
}
