//! Placement: which ready task goes to which worker. Highest priority first; each goes to
//! the worker where it would start soonest, counting the inputs it would have to fetch
//! (locality) and the work already queued there (load). Each worker's queue is bounded by
//! an estimate of how much work keeps its cores busy, so later tasks can still go where
//! their data will be. A task asking for resources goes only to a worker offering at least
//! each amount (a constraint on placement, not counted down per running task); it waits in
//! the ready queue while no such worker has room. A task without dependencies goes with
//! its families (the dependents reading it and a few others), for the worker's own
//! placement among its processes.

use smallvec::SmallVec;

use crate::comm::{Assignment, Comm, InputLocation};
use crate::core::Core;
use crate::ids::{TaskId, TaskRef, WorkerId};
use crate::task::TaskState;

/// Most tasks a dependent reads for them to be a family (see `Core::families_of`): larger
/// fan-ins (a rechunk reading every chunk) are all-to-all, and making them in one process
/// would serialise them.
pub const MAX_FAMILY: usize = 8;

impl Core {
    /// Tasks one worker may have queued, per core, for the measured task duration.
    pub fn queue_limit_per_core(&self) -> u32 {
        let per_core = self.config.target_backlog_us as f64 / self.task_duration_us.max(1.0);
        (per_core.ceil() as u32).clamp(2, self.config.max_queued_per_core)
    }

    /// Assigns ready tasks to workers with room. Returns how many were assigned.
    pub fn schedule(&mut self, comm: &mut impl Comm) -> usize {
        let per_core = self.queue_limit_per_core();
        let mut room: Vec<(WorkerId, u32)> = self
            .workers_iter()
            .filter(|(_, w)| w.takes_tasks())
            .map(|(id, w)| (id, (w.cores * per_core).saturating_sub(w.assigned)))
            .filter(|&(_, r)| r > 0)
            .collect();
        let mut assigned = 0;
        let mut deferred = Vec::new();
        let mut inputs: SmallVec<[InputLocation; 8]> = SmallVec::new();
        while !room.is_empty() {
            let Some(entry) = self.ready.pop() else { break };
            let Some(task) = self.resolve(TaskRef {
                id: entry.task,
                generation: entry.generation,
            }) else {
                continue;
            };
            if task.state != TaskState::Ready {
                continue;
            }
            let Some(slot) = self.best_worker(entry.task, &room) else {
                deferred.push(entry);
                continue;
            };
            let worker = room[slot].0;
            room[slot].1 -= 1;
            if room[slot].1 == 0 {
                room.swap_remove(slot);
            }
            self.set_state(entry.task, TaskState::Assigned(worker), comm);
            inputs.clear();
            let families = self.families_of(entry.task);
            let task = self.task(entry.task);
            for &d in task.deps.iter() {
                if let TaskState::Memory(holder) = self.task(d).state {
                    let holders = self.holders(d);
                    let from = if holders.contains(&worker) {
                        worker
                    } else {
                        holder
                    };
                    inputs.push(InputLocation {
                        task: self.task_ref(d),
                        worker: from,
                    });
                }
            }
            comm.assign(
                worker,
                &Assignment {
                    task: self.task_ref(entry.task),
                    key: &task.key,
                    payload: &task.payload,
                    inputs: &inputs,
                    wanted: task.is_wanted(),
                    families: &families,
                },
            );
            assigned += 1;
        }
        self.ready.extend(deferred);
        assigned
    }

    /// For a Python task without dependencies, its dependents that read at most
    /// [`MAX_FAMILY`] tasks each: the tasks each reads are best made where it will read them
    /// (as Dask co-assigns root tasks). Empty for other tasks (builtin tasks run in the
    /// worker itself: it has no processes to choose among).
    pub fn families_of(&self, task: TaskId) -> SmallVec<[TaskRef; 4]> {
        let t = self.task(task);
        if !t.deps.is_empty() || !matches!(t.payload, crate::task::Payload::Python(_)) {
            return SmallVec::new();
        }
        t.dependents
            .as_slice()
            .iter()
            .filter(|r| {
                self.resolve(**r)
                    .is_some_and(|d| (2..=MAX_FAMILY).contains(&d.deps.len()))
            })
            .copied()
            .collect()
    }

    /// Index into `room` of the worker where the task would start soonest, among those
    /// offering the resources it asks (`None`: none of them does).
    fn best_worker(&self, task: TaskId, room: &[(WorkerId, u32)]) -> Option<usize> {
        let deps = &self.task(task).deps;
        let request = self.resources_of(task);
        let duration = self.task_duration_us.max(1.0);
        let mut best: Option<(f64, usize)> = None;
        for (slot, &(wid, _)) in room.iter().enumerate() {
            let w = self.worker(wid);
            if let Some(r) = request
                && !w.resources.satisfies(r)
            {
                continue;
            }
            let mut transfer = 0.0;
            for &d in deps.iter() {
                let dep = self.task(d);
                if !self.holders(d).contains(&wid) {
                    transfer += self.config.fetch_latency_us
                        + dep.size as f64 / self.config.bandwidth_bytes_per_us;
                }
            }
            let load = f64::from(w.assigned + 1) * duration / f64::from(w.cores);
            let cost = transfer + load;
            if best.is_none_or(|(b, _)| cost < b) {
                best = Some((cost, slot));
            }
        }
        best.map(|(_, slot)| slot)
    }
}
