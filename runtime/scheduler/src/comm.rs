//! The core's output port over gRPC: buffers messages per worker and per client during a
//! batch of events, then sends each buffer as one message (`flush`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use shoal_core::{
    Assignment, ClientId, Comm, InputLocation, Payload, TaskError, TaskRef, WorkerId,
};
use shoal_proto::convert::{error_to_wire, payload_to_wire};
use shoal_proto::v1;
use shoal_proto::v1::scheduler_message::Msg;
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

/// Assignments per message: keeps messages well under the size limit.
const ASSIGNMENTS_PER_MESSAGE: usize = 8192;

pub type WorkerSender = mpsc::UnboundedSender<Result<v1::SchedulerMessage, Status>>;
pub type ClientSender = mpsc::UnboundedSender<Result<v1::ClientEvents, Status>>;

#[derive(Default)]
struct WorkerOut {
    sender: Option<WorkerSender>,
    assign: Vec<v1::TaskAssignment>,
    /// Shared blobs to send with the next assignments.
    blobs: Vec<v1::SharedBlob>,
    /// Shared blobs this worker was sent already.
    sent_blobs: HashSet<u64>,
    release: Vec<u64>,
    cancel: Vec<u64>,
    other: Vec<Msg>,
}

#[derive(Default)]
struct ClientOut {
    sender: Option<ClientSender>,
    events: v1::ClientEvents,
}

#[derive(Default)]
pub struct GrpcComm {
    workers: HashMap<WorkerId, WorkerOut>,
    clients: HashMap<ClientId, ClientOut>,
    /// RetireWorkers calls waiting for their workers, by worker name.
    pub retire_waiters: HashMap<String, oneshot::Sender<Result<(), String>>>,
    /// Workers told to shut down in this batch (their sessions end after the flush).
    pub shut_down: Vec<WorkerId>,
    pub assigned: u64,
    /// Shared payload blobs of Python tasks, by id (see `retain_blobs`).
    pub blobs: HashMap<u64, Arc<[u8]>>,
}

fn location(input: &InputLocation) -> v1::DataLocation {
    v1::DataLocation {
        task: input.task.to_wire(),
        workers: vec![input.worker.0],
    }
}

impl GrpcComm {
    pub fn add_worker(&mut self, worker: WorkerId, sender: WorkerSender) {
        self.workers.entry(worker).or_default().sender = Some(sender);
    }

    pub fn remove_worker(&mut self, worker: WorkerId) {
        self.workers.remove(&worker);
    }

    pub fn add_client(&mut self, client: ClientId) {
        self.clients.entry(client).or_default();
    }

    pub fn subscribe_client(&mut self, client: ClientId, sender: ClientSender) {
        self.clients.entry(client).or_default().sender = Some(sender);
    }

    pub fn remove_client(&mut self, client: ClientId) {
        self.clients.remove(&client);
    }

    /// Queues a message for a worker outside the core's port (peers, registration).
    pub fn send_worker(&mut self, worker: WorkerId, msg: Msg) {
        self.workers.entry(worker).or_default().other.push(msg);
    }

    /// Keeps only the blobs live tasks still use.
    pub fn retain_blobs(&mut self, live: &HashSet<u64>) {
        self.blobs.retain(|id, _| live.contains(id));
    }

    pub fn worker_ids(&self) -> Vec<WorkerId> {
        self.workers.keys().copied().collect()
    }

    /// Sends everything buffered.
    pub fn flush(&mut self) {
        for out in self.workers.values_mut() {
            let Some(sender) = &out.sender else { continue };
            let send = |msg: Msg| {
                let _ = sender.send(Ok(v1::SchedulerMessage { msg: Some(msg) }));
            };
            for msg in out.other.drain(..) {
                send(msg);
            }
            if !out.cancel.is_empty() {
                send(Msg::Cancel(v1::CancelTasks {
                    tasks: std::mem::take(&mut out.cancel),
                }));
            }
            while !out.assign.is_empty() {
                let rest = if out.assign.len() > ASSIGNMENTS_PER_MESSAGE {
                    out.assign.split_off(ASSIGNMENTS_PER_MESSAGE)
                } else {
                    Vec::new()
                };
                let tasks = std::mem::replace(&mut out.assign, rest);
                let blobs = std::mem::take(&mut out.blobs);
                send(Msg::Assign(v1::AssignTasks { tasks, blobs }));
            }
            if !out.release.is_empty() {
                send(Msg::Release(v1::ReleaseData {
                    tasks: std::mem::take(&mut out.release),
                }));
            }
        }
        for out in self.clients.values_mut() {
            let Some(sender) = &out.sender else { continue };
            if out.events.finished.is_empty()
                && out.events.failed.is_empty()
                && out.events.finished_serials.is_empty()
            {
                continue;
            }
            let events = std::mem::take(&mut out.events);
            let _ = sender.send(Ok(events));
        }
    }
}

impl Comm for GrpcComm {
    fn assign(&mut self, worker: WorkerId, a: &Assignment<'_>) {
        self.assigned += 1;
        let out = self.workers.entry(worker).or_default();
        if let Payload::Python(p) = a.payload
            && p.shared != 0
            && out.sent_blobs.insert(p.shared)
            && let Some(data) = self.blobs.get(&p.shared)
        {
            out.blobs.push(v1::SharedBlob {
                id: p.shared,
                data: data.to_vec(),
            });
        }
        out.assign.push(v1::TaskAssignment {
            task: a.task.to_wire(),
            key: a.key.to_string(),
            payload: Some(payload_to_wire(a.payload)),
            inputs: a.inputs.iter().map(location).collect(),
            wanted: a.wanted,
            families: a.families.iter().map(|f| f.to_wire()).collect(),
        });
    }

    fn release_data(&mut self, worker: WorkerId, task: TaskRef) {
        if let Some(out) = self.workers.get_mut(&worker) {
            out.release.push(task.to_wire());
        }
    }

    fn cancel_task(&mut self, worker: WorkerId, task: TaskRef) {
        if let Some(out) = self.workers.get_mut(&worker) {
            out.cancel.push(task.to_wire());
        }
    }

    fn replicate(&mut self, worker: WorkerId, inputs: &[InputLocation]) {
        self.send_worker(
            worker,
            Msg::Replicate(v1::Replicate {
                tasks: inputs.iter().map(location).collect(),
            }),
        );
    }

    fn shutdown_worker(&mut self, worker: WorkerId, reason: &str) {
        self.send_worker(
            worker,
            Msg::Shutdown(v1::Shutdown {
                reason: reason.to_string(),
            }),
        );
        self.shut_down.push(worker);
    }

    fn retire_done(&mut self, _worker: WorkerId, name: &str, result: Result<(), String>) {
        match &result {
            Ok(()) => tracing::info!(worker = name, "worker retired; its results were moved"),
            Err(reason) => tracing::warn!(worker = name, reason, "worker not retired"),
        }
        if let Some(waiter) = self.retire_waiters.remove(name) {
            let _ = waiter.send(result);
        }
    }

    fn key_finished(&mut self, client: ClientId, key: &str, serial: Option<u64>, size: u64) {
        if let Some(out) = self.clients.get_mut(&client) {
            match serial {
                Some(serial) => out.events.finished_serials.push(serial),
                None => out.events.finished.push(v1::KeyFinished {
                    key: key.to_string(),
                    size,
                }),
            }
        }
    }

    fn key_failed(&mut self, client: ClientId, key: &str, error: &Arc<TaskError>) {
        if let Some(out) = self.clients.get_mut(&client) {
            out.events.failed.push(v1::KeyFailed {
                key: key.to_string(),
                error: Some(error_to_wire(error)),
            });
        }
    }
}
