//! Placement: which ready task goes to which worker. Highest priority first; each goes to
//! the worker where it would start soonest, counting the inputs it would have to fetch
//! (locality) and the work already queued there (load). Each worker's queue is bounded by
//! an estimate of how much work keeps its cores busy, so later tasks can still go where
//! their data will be.

use smallvec::SmallVec;

use crate::comm::{Assignment, Comm, InputLocation};
use crate::core::Core;
use crate::ids::WorkerId;
use crate::task::TaskState;

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
            .filter(|(_, w)| w.is_active())
            .map(|(id, w)| (id, (w.cores * per_core).saturating_sub(w.assigned)))
            .filter(|&(_, r)| r > 0)
            .collect();
        let mut assigned = 0;
        let mut inputs: SmallVec<[InputLocation; 8]> = SmallVec::new();
        while !room.is_empty() {
            let Some(entry) = self.ready.pop() else { break };
            let Some(task) = self.resolve(crate::ids::TaskRef {
                id: entry.task,
                generation: entry.generation,
            }) else {
                continue;
            };
            if task.state != TaskState::Ready {
                continue;
            }
            let slot = self.best_worker(entry.task, &room);
            let worker = room[slot].0;
            room[slot].1 -= 1;
            if room[slot].1 == 0 {
                room.swap_remove(slot);
            }
            self.set_state(entry.task, TaskState::Assigned(worker), comm);
            inputs.clear();
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
                },
            );
            assigned += 1;
        }
        assigned
    }

    /// Index into `room` of the worker where the task would start soonest.
    fn best_worker(&self, task: crate::ids::TaskId, room: &[(WorkerId, u32)]) -> usize {
        let deps = &self.task(task).deps;
        let duration = self.task_duration_us.max(1.0);
        let mut best = (f64::INFINITY, 0usize);
        for (slot, &(wid, _)) in room.iter().enumerate() {
            let w = self.worker(wid);
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
            if cost < best.0 {
                best = (cost, slot);
            }
        }
        best.1
    }

    /// Workers the queued work asks for: enough that each core has about the target
    /// backlog of estimated work, capped by the number of tasks that could run now.
    pub fn desired_workers(&self) -> u32 {
        let counts = self.counts();
        let runnable = counts.ready + counts.assigned;
        if runnable == 0 {
            return 0;
        }
        let cores_per_worker = self
            .workers_iter()
            .map(|(_, w)| w.cores)
            .max()
            .unwrap_or(1)
            .max(1);
        let work_us = runnable as f64 * self.task_duration_us;
        let cores = (work_us / self.config.target_backlog_us.max(1) as f64).ceil() as u64;
        let cores = cores.clamp(1, runnable);
        cores.div_ceil(u64::from(cores_per_worker)) as u32
    }
}
