//! Executors run task payloads. The worker owns one per payload kind; an executor starts a
//! task and reports its outcome on a channel, so slow executors (a Python process pool,
//! sleeps) never block the worker's loop. `BuiltinExecutor` runs the native ops.

use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_proto::v1;
use shoal_proto::v1::builtin_task::Op;
use tokio::sync::mpsc;

/// A task ready to run: its payload, the shared blob it uses, and its inputs in
/// dependency order, each with the wire id of the task that made it and whether it is in
/// the store's files (its bytes are then empty: the executor reads the file itself).
pub struct ExecTask {
    pub task: u64,
    pub key: String,
    pub payload: v1::TaskPayload,
    pub shared: Option<(u64, Bytes)>,
    pub inputs: Vec<Bytes>,
    pub in_store: Vec<bool>,
    pub input_tasks: Vec<u64>,
    /// A client wants the result (an executor stores it at once).
    pub wanted: bool,
    /// For a task without inputs: the tasks reading it and a few others (the Python pool
    /// makes those others in the same process where it can).
    pub families: Vec<u64>,
}

/// The outcome of a task: its result or why it failed, and how long it ran.
pub struct ExecOutcome {
    pub task: u64,
    pub result: Result<Bytes, v1::TaskError>,
    /// The executor wrote the result into the store's shared-memory directory (`result`
    /// is then empty).
    pub in_store: bool,
    /// The executor keeps the result live instead, and writes it into the store (a file of
    /// this many bytes) only when asked (`result` is then empty).
    pub live: Option<u64>,
    /// The task did not run: this input of it was lost (the executor keeping it live
    /// died before writing it).
    pub lost_input: Option<u64>,
    pub duration: Duration,
}

pub trait Executor: Send + Sync {
    /// Starts a task; its outcome must be sent on `done` exactly once.
    fn start(&self, task: ExecTask, done: mpsc::UnboundedSender<ExecOutcome>);

    /// The worker released these tasks' values: anything the executor keeps of them goes.
    fn release(&self, _tasks: &[u64]) {}

    /// Write these results, kept live by the executor, into the store (for the memory
    /// policy: written, they can spill).
    fn publish(&self, _tasks: Vec<u64>) {}

    /// Stops the process running `task` (for memory); the task's outcome is `error`. A
    /// task that already ended, or an executor that runs tasks in the worker itself, is
    /// left alone.
    fn stop(&self, _task: u64, _error: v1::TaskError) {}

    /// The executor's processes and the task each is running (none: it runs tasks in
    /// the worker process).
    fn processes(&self) -> Vec<(u32, Option<u64>)> {
        Vec::new()
    }
}

/// Runs builtin ops: cheap ones inline, sleeps on the runtime's timer.
pub struct BuiltinExecutor {
    pub worker_name: String,
}

impl BuiltinExecutor {
    fn fail(&self, key: &str, kind: &str, message: String) -> v1::TaskError {
        v1::TaskError {
            kind: kind.to_string(),
            message: format!("task {key:?} on worker {:?}: {message}", self.worker_name),
            detail: String::new(),
            worker: self.worker_name.clone(),
            ..Default::default()
        }
    }

    /// The sum of the 8-byte inputs and `add`, or why an input is not one.
    fn sum(add: i64, inputs: &[Bytes]) -> Result<Bytes, String> {
        let mut total = add;
        for (i, input) in inputs.iter().enumerate() {
            let value = match input.len() {
                0 => 0,
                8 => i64::from_le_bytes(input[..8].try_into().unwrap_or([0; 8])),
                n => {
                    return Err(format!(
                        "sum: input {i} has {n} bytes, expected an 8-byte i64 or nothing"
                    ));
                }
            };
            total = total.wrapping_add(value);
        }
        Ok(Bytes::copy_from_slice(&total.to_le_bytes()))
    }
}

impl Executor for BuiltinExecutor {
    fn start(&self, task: ExecTask, done: mpsc::UnboundedSender<ExecOutcome>) {
        let started = Instant::now();
        let ExecTask {
            task: id,
            key,
            payload,
            inputs,
            ..
        } = task;
        let op = match payload.kind {
            Some(v1::task_payload::Kind::Builtin(b)) => b.op,
            Some(v1::task_payload::Kind::Python(_)) => {
                let error = self.fail(
                    &key,
                    "Unsupported",
                    "this worker has no Python executor; install the shoal Python package \
                     where the worker runs"
                        .into(),
                );
                let _ = done.send(ExecOutcome {
                    task: id,
                    result: Err(error),
                    in_store: false,
                    live: None,
                    lost_input: None,
                    duration: started.elapsed(),
                });
                return;
            }
            None => None,
        };
        let result = match op {
            None => Err(self.fail(&key, "Unsupported", "empty payload".into())),
            Some(Op::SleepMs(ms)) => {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    let _ = done.send(ExecOutcome {
                        task: id,
                        result: Ok(Bytes::new()),
                        in_store: false,
                        live: None,
                        lost_input: None,
                        duration: started.elapsed(),
                    });
                });
                return;
            }
            Some(Op::Noop(_)) => Ok(Bytes::new()),
            Some(Op::Concat(_)) => Ok(Bytes::from(inputs.concat())),
            Some(Op::Sum(add)) => {
                Self::sum(add, &inputs).map_err(|m| self.fail(&key, "TypeError", m))
            }
            Some(Op::AllocateBytes(n)) => Ok(Bytes::from(vec![0u8; n as usize])),
            Some(Op::Fail(message)) => Err(self.fail(&key, "TaskFailed", message)),
            Some(Op::Constant(data)) => Ok(Bytes::from(data)),
        };
        let _ = done.send(ExecOutcome {
            task: id,
            result,
            in_store: false,
            live: None,
            lost_input: None,
            duration: started.elapsed(),
        });
    }
}
