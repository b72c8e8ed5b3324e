//! The core's output port: every message the state machine wants sent goes through [`Comm`].
//! The scheduler implements it with gRPC streams; tests record it with [`TestComm`].

use std::sync::Arc;

use crate::ids::{ClientId, TaskRef, WorkerId};
use crate::task::{Payload, TaskError};

/// Where an input of an assigned task lives.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct InputLocation {
    pub task: TaskRef,
    pub worker: WorkerId,
}

/// A task assignment, borrowed from the core for the duration of the call.
#[derive(Debug)]
pub struct Assignment<'a> {
    pub task: TaskRef,
    pub key: &'a str,
    pub payload: &'a Payload,
    pub inputs: &'a [InputLocation],
    /// A client wants the result (it will be gathered, not only read by other tasks).
    pub wanted: bool,
    /// For a task without dependencies: its dependents reading a few tasks each (see
    /// `Core::families_of`).
    pub families: &'a [TaskRef],
}

/// Messages out of the core. Calls happen during an event handler; an implementation may
/// batch them and send after the handler returns.
pub trait Comm {
    fn assign(&mut self, worker: WorkerId, assignment: &Assignment<'_>);
    /// The worker may drop its copy of this result.
    fn release_data(&mut self, worker: WorkerId, task: TaskRef);
    /// The worker should stop or skip this task (nobody needs it any more).
    fn cancel_task(&mut self, worker: WorkerId, task: TaskRef);
    /// Fetch these objects from the given holders and keep them (retirement).
    fn replicate(&mut self, worker: WorkerId, inputs: &[InputLocation]);
    /// The worker is done (retired); tell it to exit.
    fn shutdown_worker(&mut self, worker: WorkerId, reason: &str);
    /// A retirement finished (`Ok`) or was refused (`Err(reason)`).
    fn retire_done(&mut self, worker: WorkerId, name: &str, result: Result<(), String>);
    /// A wanted key finished. `serial` is set when the client submitted the task itself
    /// (it knows the key by serial).
    fn key_finished(&mut self, client: ClientId, key: &str, serial: Option<u64>, size: u64);
    /// A wanted key failed.
    fn key_failed(&mut self, client: ClientId, key: &str, error: &Arc<TaskError>);
}

/// One recorded output message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    Assign {
        worker: WorkerId,
        task: TaskRef,
        key: String,
        inputs: Vec<InputLocation>,
        families: Vec<TaskRef>,
    },
    ReleaseData(WorkerId, TaskRef),
    Cancel(WorkerId, TaskRef),
    Replicate(WorkerId, Vec<InputLocation>),
    Shutdown(WorkerId),
    RetireDone(String, Result<(), String>),
    Finished(ClientId, String),
    Failed(ClientId, String, Arc<TaskError>),
}

/// Records every message, for tests.
#[derive(Default, Debug)]
pub struct TestComm {
    pub sent: Vec<Sent>,
}

impl TestComm {
    /// Takes the recorded messages.
    pub fn take(&mut self) -> Vec<Sent> {
        std::mem::take(&mut self.sent)
    }

    /// Takes the recorded assignments as (worker, task, key).
    pub fn take_assigned(&mut self) -> Vec<(WorkerId, TaskRef, String)> {
        let mut out = Vec::new();
        self.sent.retain(|s| match s {
            Sent::Assign {
                worker, task, key, ..
            } => {
                out.push((*worker, *task, key.clone()));
                false
            }
            _ => true,
        });
        out
    }
}

impl Comm for TestComm {
    fn assign(&mut self, worker: WorkerId, a: &Assignment<'_>) {
        self.sent.push(Sent::Assign {
            worker,
            task: a.task,
            key: a.key.to_string(),
            inputs: a.inputs.to_vec(),
            families: a.families.to_vec(),
        });
    }
    fn release_data(&mut self, worker: WorkerId, task: TaskRef) {
        self.sent.push(Sent::ReleaseData(worker, task));
    }
    fn cancel_task(&mut self, worker: WorkerId, task: TaskRef) {
        self.sent.push(Sent::Cancel(worker, task));
    }
    fn replicate(&mut self, worker: WorkerId, inputs: &[InputLocation]) {
        self.sent.push(Sent::Replicate(worker, inputs.to_vec()));
    }
    fn shutdown_worker(&mut self, worker: WorkerId, _reason: &str) {
        self.sent.push(Sent::Shutdown(worker));
    }
    fn retire_done(&mut self, _worker: WorkerId, name: &str, result: Result<(), String>) {
        self.sent.push(Sent::RetireDone(name.to_string(), result));
    }
    fn key_finished(&mut self, client: ClientId, key: &str, _serial: Option<u64>, _size: u64) {
        self.sent.push(Sent::Finished(client, key.to_string()));
    }
    fn key_failed(&mut self, client: ClientId, key: &str, error: &Arc<TaskError>) {
        self.sent
            .push(Sent::Failed(client, key.to_string(), Arc::clone(error)));
    }
}
