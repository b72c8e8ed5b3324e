//! The Python executor pool: `python -m shoal.executor` processes (one per core, started on
//! the first Python task) that run Python payloads. Frames are a 4-byte little-endian length
//! and one protobuf message (proto/shoal/v1/executor.proto) over each process's
//! stdin/stdout. A process that dies (segfault, `os._exit`, memory) fails only the task it
//! was running, with the cause, and is replaced; the tasks queued behind it run elsewhere.
//! The worker's memory policy may stop the process running a task (`Executor::stop`):
//! that task then fails with the policy's error, and the process is replaced.
//!
//! Large results stay live in the process that made them (python/shoal/executor.py): a
//! task reading one goes to its holder when that would start it sooner than writing it
//! for another process would; otherwise (or when a peer, the client or the memory policy
//! needs it) the holder writes it into the store first, and the task waits. A process
//! that dies takes its live results with it: they are reported lost (the scheduler
//! recomputes them) and the tasks needing them fail as missing inputs.
//!
//! Not here: live results' bookkeeping and the choice of process (`live`), the errors of a
//! dead process (`crash`), what a payload means (python/shoal/executor.py), scheduling
//! (the worker loop).

use std::collections::{HashMap, HashSet, VecDeque};
#[cfg(target_os = "linux")]
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use shoal_core::PrefixId;
use shoal_core::prefix::Prefixes;
use shoal_proto::v1;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot};

use crate::executor::{ExecOutcome, ExecTask, Executor};
use crate::store::Store;

mod crash;
mod families;
mod live;

use crash::describe_exit;
use families::Families;
pub use live::Publisher;
use live::{Kept, LiveAt, Waiter};

/// Most tasks sent ahead to one executor process when many are waiting.
const MAX_AHEAD: usize = 16;
/// The run time assumed for a task of a prefix none of whose tasks ended yet.
const UNKNOWN_TASK_US: f64 = 1000.0;
/// Capacity asked for each executor pipe (64 KiB by default; up to 1 MiB unprivileged,
/// `/proc/sys/fs/pipe-max-size`). A shuffle task's frame carries its 8 pieces of 30-40 KiB:
/// through a 64 KiB pipe it goes in several writes, and after each the executor's reading
/// thread takes the interpreter from the running task. On bench/dask_compare.py's dataframe
/// row, 4 rounds x 3 runs alternating: median 1.63 s against 1.67 s.
#[cfg(target_os = "linux")]
const PIPE_BYTES: usize = 1 << 20;
/// Thread-count variables of numeric libraries, set to 1 for executors unless set.
const SINGLE_THREADED: [&str; 4] = [
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
];
/// Arrays up to this size come from an executor's heap (glibc's `MALLOC_MMAP_THRESHOLD_`
/// unless set), so a freed chunk-sized array is reused, not faulted in again.
const MALLOC_MMAP_THRESHOLD: u64 = 64 << 20;
/// Free heap an executor keeps while busy (glibc's `MALLOC_TRIM_THRESHOLD_` unless set):
/// an eighth of its share of the worker's memory, within these bounds. A task making
/// several chunk-sized temporaries frees more than 64 MiB at once; handed back, the next
/// such task faults it all in again (the var-partials of bench/local_compare.py's
/// climatology row: up to 2,800 faults and 0.27 s of kernel time each at 64 MiB, 0-960
/// at 1 GiB). An idle executor hands its free heap back anyway (python/shoal/executor.py).
const MALLOC_TRIM_THRESHOLD: (u64, u64) = (64 << 20, 1 << 30);

/// glibc malloc settings for an executor of a worker with `memory_limit` bytes shared by
/// `processes` executors.
fn malloc_tuning(memory_limit: u64, processes: usize) -> [(&'static str, u64); 2] {
    let share = memory_limit / processes.max(1) as u64;
    let (low, high) = MALLOC_TRIM_THRESHOLD;
    [
        ("MALLOC_MMAP_THRESHOLD_", MALLOC_MMAP_THRESHOLD),
        ("MALLOC_TRIM_THRESHOLD_", (share / 8).clamp(low, high)),
    ]
}

/// How often the list of processes and their running tasks is published.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);

#[derive(Clone, Debug)]
pub struct PythonConfig {
    /// The Python interpreter, e.g. "python3".
    pub program: String,
    pub processes: usize,
    pub worker_name: String,
    /// The worker's memory limit (executors size their value caches from it).
    pub memory_limit: u64,
    /// The worker's cgroup, if it has a limit: an executor killed by the kernel's OOM
    /// killer is told apart from other crashes by its `oom_kill` count.
    pub cgroup: Option<crate::cgroup::Cgroup>,
    /// The store's shared-memory directory (`None`: results come back as bytes).
    pub store_dir: Option<PathBuf>,
    /// The store's spill directory (executors read spilled inputs from it).
    pub spill_dir: PathBuf,
}

struct Job {
    task: ExecTask,
    done: mpsc::UnboundedSender<ExecOutcome>,
    /// Whether an executor already died while writing this task's result.
    rewritten: bool,
}

/// What the pool is asked to do.
enum PoolMsg {
    Run(Job),
    /// Values the worker released: every live process forgets what it kept of them.
    Release(Vec<u64>),
    /// Kill the process running this task; the task fails with this error.
    Stop(u64, v1::TaskError),
    /// Have these live results written into the store; say so (if asked) once each is
    /// written, sent as bytes, or lost.
    Publish(Vec<u64>, Option<oneshot::Sender<()>>),
}

/// Live processes and the task each runs (the front of what it was sent).
type Published = Arc<Mutex<Vec<(u32, Option<u64>)>>>;

/// Runs Python payloads on a pool of executor processes.
pub struct PythonPool {
    jobs: mpsc::UnboundedSender<PoolMsg>,
    published: Published,
}

impl PythonPool {
    /// A pool whose live results are recorded in `store`.
    pub fn new(config: PythonConfig, store: Arc<Mutex<Store>>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let published = Published::default();
        tokio::spawn(Pool::new(config, Arc::clone(&published), store).run(rx));
        PythonPool {
            jobs: tx,
            published,
        }
    }

    pub fn publisher(&self) -> Publisher {
        Publisher(self.jobs.clone())
    }
}

impl Executor for PythonPool {
    fn start(&self, task: ExecTask, done: mpsc::UnboundedSender<ExecOutcome>) {
        if let Err(mpsc::error::SendError(PoolMsg::Run(job))) = self.jobs.send(PoolMsg::Run(Job {
            task,
            done,
            rewritten: false,
        })) {
            let error = v1::TaskError {
                kind: "ExecutorUnavailable".into(),
                message: "the Python executor pool has stopped".into(),
                ..Default::default()
            };
            let _ = job.done.send(ExecOutcome {
                task: job.task.task,
                result: Err(error),
                in_store: false,
                live: None,
                lost_input: None,
                duration: Duration::ZERO,
            });
        }
    }

    fn release(&self, tasks: &[u64]) {
        let _ = self.jobs.send(PoolMsg::Release(tasks.to_vec()));
    }

    fn publish(&self, tasks: Vec<u64>) {
        let _ = self.jobs.send(PoolMsg::Publish(tasks, None));
    }

    fn stop(&self, task: u64, error: v1::TaskError) {
        let _ = self.jobs.send(PoolMsg::Stop(task, error));
    }

    fn processes(&self) -> Vec<(u32, Option<u64>)> {
        self.published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A task sent to a process and not answered yet.
struct InFlight {
    task: u64,
    key: String,
    done: mpsc::UnboundedSender<ExecOutcome>,
    /// Kept so the task can run elsewhere if the process dies before starting it.
    job: ExecTask,
    rewritten: bool,
    sent: Instant,
    /// Its prefix, and how long it was expected to run when sent.
    prefix: PrefixId,
    expected_us: f64,
}

struct Process {
    generation: u64,
    pid: u32,
    child: Child,
    frames: mpsc::UnboundedSender<Vec<u8>>,
    inflight: VecDeque<InFlight>,
    sent_blobs: HashSet<u64>,
    /// Values it was sent or made, not released since: it may hold them live (a hint).
    holds: HashSet<u64>,
    /// Set when the worker stopped it for memory: the error of its running task.
    killed_for: Option<v1::TaskError>,
    /// The expected run time of the tasks sent to it and not answered, in microseconds.
    queued_us: f64,
}

enum ProcEvent {
    Reply(usize, u64, Box<v1::ExecutorReply>),
    /// Answers to publish requests (a reply carrying `published`).
    Published(usize, u64, Vec<v1::Published>),
    Exited(usize, u64),
}

struct Pool {
    config: PythonConfig,
    slots: Vec<Option<Process>>,
    queue: VecDeque<Job>,
    events_tx: mpsc::UnboundedSender<ProcEvent>,
    events_rx: mpsc::UnboundedReceiver<ProcEvent>,
    next_generation: u64,
    published: Published,
    /// The cgroup's OOM kill count when last looked at.
    oom_kills: u64,
    store: Arc<Mutex<Store>>,
    /// Results kept live, by the process keeping each.
    live: HashMap<u64, Kept>,
    /// Task prefixes with the moving average of their run times.
    prefixes: Prefixes,
    /// Live results asked to be written, not answered yet, and when they were asked.
    publishing: HashMap<u64, Instant>,
    /// Who waits for which of those.
    waiting: Vec<(Waiter, HashSet<u64>)>,
    /// Live results lost with their process (until released or made again).
    lost: HashSet<u64>,
    /// Where the tasks of each family of root tasks went.
    families: Families,
}

impl Pool {
    fn new(config: PythonConfig, published: Published, store: Arc<Mutex<Store>>) -> Self {
        let oom_kills = config
            .cgroup
            .as_ref()
            .and_then(crate::cgroup::Cgroup::oom_kills)
            .unwrap_or(0);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let slots = (0..config.processes.max(1)).map(|_| None).collect();
        Pool {
            config,
            slots,
            queue: VecDeque::new(),
            events_tx,
            events_rx,
            next_generation: 0,
            oom_kills,
            published,
            store,
            live: HashMap::new(),
            prefixes: Prefixes::default(),
            publishing: HashMap::new(),
            waiting: Vec::new(),
            lost: HashSet::new(),
            families: Families::default(),
        }
    }

    async fn run(mut self, mut jobs: mpsc::UnboundedReceiver<PoolMsg>) {
        let mut publish = tokio::time::interval(PUBLISH_EVERY);
        loop {
            tokio::select! {
                msg = jobs.recv() => match msg {
                    Some(PoolMsg::Run(job)) => self.queue.push_back(job),
                    Some(PoolMsg::Release(tasks)) => self.release(tasks),
                    Some(PoolMsg::Stop(task, error)) => self.stop(task, error),
                    Some(PoolMsg::Publish(tasks, caller)) => self.publish_for(tasks, caller),
                    None => break,
                },
                Some(event) = self.events_rx.recv() => self.handle(event).await,
                _ = publish.tick() => self.publish(),
            }
            self.dispatch();
        }
        for slot in self.slots.iter_mut().flatten() {
            let _ = slot.child.start_kill();
        }
    }

    fn spawn(&mut self, index: usize) -> Result<(), String> {
        let mut command = Command::new(&self.config.program);
        command
            .args(["-u", "-m", "shoal.executor"])
            .env("SHOAL_WORKER_NAME", &self.config.worker_name)
            .env("SHOAL_SPILL_DIR", &self.config.spill_dir);
        match &self.config.store_dir {
            Some(dir) => command.env("SHOAL_STORE_DIR", dir),
            None => command.env_remove("SHOAL_STORE_DIR"),
        };
        // One task at a time per executor, one executor per core: numeric libraries'
        // own thread pools would oversubscribe the cores (OpenBLAS threads spin), as
        // Dask's nannies also set for their workers. A variable already set is kept.
        for var in SINGLE_THREADED {
            if std::env::var_os(var).is_none() {
                command.env(var, "1");
            }
        }
        for (var, value) in malloc_tuning(self.config.memory_limit, self.slots.len()) {
            if std::env::var_os(var).is_none() {
                command.env(var, value.to_string());
            }
        }
        let mut child = command
            .env(
                "SHOAL_EXECUTOR_MEMORY_LIMIT",
                self.config.memory_limit.to_string(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start `{} -m shoal.executor`: {e}; install Python and the shoal \
                     package (pip install shoal=={}) where workers run, or pass --python",
                    self.config.program,
                    shoal_proto::RUNTIME_VERSION
                )
            })?;
        let stdin = child.stdin.take().ok_or("executor stdin not captured")?;
        let stdout = child.stdout.take().ok_or("executor stdout not captured")?;
        #[cfg(target_os = "linux")]
        for pipe in [stdin.as_fd(), stdout.as_fd()] {
            if let Err(e) = rustix::pipe::fcntl_setpipe_size(pipe, PIPE_BYTES) {
                tracing::debug!(error = %e, "executor pipe keeps its default size");
            }
        }
        let pid = child.id().unwrap_or(0);
        self.next_generation += 1;
        let generation = self.next_generation;
        let (frames_tx, frames_rx) = mpsc::unbounded_channel();
        tokio::spawn(write_frames(stdin, frames_rx));
        tokio::spawn(read_replies(
            stdout,
            index,
            generation,
            self.events_tx.clone(),
        ));
        tracing::debug!(
            worker = self.config.worker_name,
            pid,
            "python executor started"
        );
        self.slots[index] = Some(Process {
            generation,
            pid,
            child,
            frames: frames_tx,
            inflight: VecDeque::new(),
            sent_blobs: HashSet::new(),
            holds: HashSet::new(),
            killed_for: None,
            queued_us: 0.0,
        });
        Ok(())
    }

    /// Tells every live process to forget the released values (a hint: a process that
    /// missed it only keeps them longer, within its cache budget).
    fn release(&mut self, tasks: Vec<u64>) {
        for process in self.slots.iter_mut().flatten() {
            for task in &tasks {
                process.holds.remove(task);
            }
        }
        for task in &tasks {
            self.live.remove(task);
            self.lost.remove(task);
        }
        let frame = frame(&v1::ExecutorRequest {
            released: tasks.clone(),
            ..Default::default()
        });
        for process in self.slots.iter().flatten() {
            let _ = process.frames.send(frame.clone());
        }
        for task in tasks {
            self.resolved(task);
        }
    }

    /// Sends queued jobs to processes (starting processes as needed), several per frame.
    /// A job whose inputs another process keeps live waits until they are written.
    fn dispatch(&mut self) {
        if !self.waiting.is_empty() {
            self.repick_waiting();
        }
        let mut requests: Vec<v1::ExecutorRequest> =
            vec![v1::ExecutorRequest::default(); self.slots.len()];
        while let Some(front) = self.queue.front() {
            let prefix = self.prefixes.intern_key(&front.task.key);
            let expected_us = self.prefixes.duration_us(prefix).unwrap_or(UNKNOWN_TASK_US);
            let index = if front.task.families.is_empty() {
                self.pick(front)
            } else {
                let index = self.pick_sibling(front, prefix, expected_us);
                if let Some(i) = index {
                    self.families
                        .record(&front.task.families, i, self.slots.len());
                }
                index
            };
            let Some(index) = index else {
                break;
            };
            let Some(job) = self.queue.pop_front() else {
                break;
            };
            if let Some(lost) = job.task.input_tasks.iter().find(|t| self.lost.contains(t)) {
                let _ = job.done.send(ExecOutcome {
                    task: job.task.task,
                    result: Err(v1::TaskError::default()),
                    in_store: false,
                    live: None,
                    lost_input: Some(*lost),
                    duration: Duration::ZERO,
                });
                continue;
            }
            let elsewhere = self.live_elsewhere(&job, index);
            if !elsewhere.is_empty() {
                let pending = self.request_publish(elsewhere);
                if !pending.is_empty() {
                    self.waiting.push((Waiter::Job(Box::new(job)), pending));
                    continue;
                }
            }
            if self.slots[index].is_none()
                && let Err(message) = self.spawn(index)
            {
                self.queue.push_front(job);
                self.fail_all(&message);
                return;
            }
            let Some(process) = self.slots[index].as_mut() else {
                return;
            };
            let request = &mut requests[index];
            if let Some((id, data)) = &job.task.shared
                && process.sent_blobs.insert(*id)
            {
                request.blobs.push(v1::SharedBlob {
                    id: *id,
                    data: data.to_vec(),
                });
            }
            let payload = match &job.task.payload.kind {
                Some(v1::task_payload::Kind::Python(p)) => p.clone(),
                _ => v1::PythonTask::default(),
            };
            process.holds.extend(job.task.input_tasks.iter().copied());
            process.holds.insert(job.task.task);
            process.queued_us += expected_us;
            request.tasks.push(v1::ExecTask {
                task: job.task.task,
                key: job.task.key.clone(),
                payload: Some(payload),
                inputs: job.task.inputs.clone(),
                input_tasks: job.task.input_tasks.clone(),
                in_store: job.task.in_store.clone(),
                wanted: job.task.wanted,
            });
            process.inflight.push_back(InFlight {
                task: job.task.task,
                key: job.task.key.clone(),
                done: job.done,
                job: job.task,
                rewritten: job.rewritten,
                sent: Instant::now(),
                prefix,
                expected_us,
            });
        }
        for (index, request) in requests.into_iter().enumerate() {
            if let Some(process) = &self.slots[index]
                && !request.tasks.is_empty()
            {
                let _ = process.frames.send(frame(&request));
            }
        }
    }

    fn fail_all(&mut self, message: &str) {
        for job in self.queue.drain(..) {
            let error = v1::TaskError {
                kind: "ExecutorUnavailable".into(),
                message: format!(
                    "task {:?} on worker {:?}: {message}",
                    job.task.key, self.config.worker_name
                ),
                worker: self.config.worker_name.clone(),
                ..Default::default()
            };
            let _ = job.done.send(ExecOutcome {
                task: job.task.task,
                result: Err(error),
                in_store: false,
                live: None,
                lost_input: None,
                duration: Duration::ZERO,
            });
        }
    }

    async fn handle(&mut self, event: ProcEvent) {
        match event {
            ProcEvent::Reply(index, generation, reply) => {
                let Some(process) = self.slots[index].as_mut() else {
                    return;
                };
                if process.generation != generation {
                    return;
                }
                let Some(front) = process.inflight.pop_front() else {
                    return;
                };
                process.queued_us = (process.queued_us - front.expected_us).max(0.0);
                if front.task != reply.task {
                    tracing::error!(
                        worker = self.config.worker_name,
                        expected = front.task,
                        got = reply.task,
                        "python executor answered out of order"
                    );
                }
                let duration = Duration::from_micros(reply.duration_us);
                let live = (reply.live && reply.error.is_none()).then_some(reply.size);
                if let Some(size) = live {
                    let at = LiveAt { index, generation };
                    self.live.insert(front.task, Kept { at, size });
                    self.lost.remove(&front.task);
                }
                self.prefixes
                    .observe(front.prefix, reply.duration_us as f64);
                if reply.error.is_none() {
                    self.families
                        .observe(front.prefix, live.is_some() || reply.in_store);
                }
                let result = match reply.error {
                    Some(error) => Err(error),
                    None => Ok(reply.value),
                };
                let _ = front.done.send(ExecOutcome {
                    task: front.task,
                    result,
                    in_store: reply.in_store,
                    live,
                    lost_input: None,
                    duration,
                });
            }
            ProcEvent::Published(index, generation, published) => {
                for answer in published {
                    self.take_published(LiveAt { index, generation }, answer);
                }
            }
            ProcEvent::Exited(index, generation) => {
                let Some(mut process) = self.slots[index].take() else {
                    return;
                };
                if process.generation != generation {
                    self.slots[index] = Some(process);
                    return;
                }
                let status = process.child.wait().await.ok();
                self.lose_live(LiveAt { index, generation }, process.pid);
                let stopped = process.killed_for.take();
                let mut inflight = std::mem::take(&mut process.inflight);
                let writing = self.remove_unsealed(process.pid, inflight.front().map(|f| f.task));
                if let Some(running) = inflight.pop_front() {
                    if writing && !running.rewritten && stopped.is_none() {
                        // The task's code ran to its end; its executor died storing the
                        // value (a kill, a full /dev/shm): run it once more.
                        tracing::warn!(
                            worker = self.config.worker_name,
                            task = running.key,
                            pid = process.pid,
                            cause = describe_exit(status),
                            "python executor died while writing a result to the shared-memory \
                             store; the half-written file was deleted and the task runs again"
                        );
                        inflight.push_front(InFlight {
                            rewritten: true,
                            ..running
                        });
                    } else {
                        self.fail_crashed(running, process.pid, stopped, status);
                    }
                }
                // Tasks queued behind the crashed one never started: they run elsewhere.
                for waiting in inflight.into_iter().rev() {
                    self.queue.push_front(Job {
                        task: waiting.job,
                        done: waiting.done,
                        rewritten: waiting.rewritten,
                    });
                }
            }
        }
    }

    /// Kills the process running `task`, if one still is.
    fn stop(&mut self, task: u64, error: v1::TaskError) {
        for process in self.slots.iter_mut().flatten() {
            if process.killed_for.is_none()
                && process.inflight.front().is_some_and(|f| f.task == task)
            {
                process.killed_for = Some(error);
                let _ = process.child.start_kill();
                return;
            }
        }
    }

    fn publish(&self) {
        let now: Vec<(u32, Option<u64>)> = self
            .slots
            .iter()
            .flatten()
            .map(|p| (p.pid, p.inflight.front().map(|f| f.task)))
            .collect();
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }
}

/// One request as a frame: a 4-byte little-endian length, then the message.
fn frame(request: &v1::ExecutorRequest) -> Vec<u8> {
    let len = request.encoded_len();
    let mut frame = Vec::with_capacity(len + 4);
    frame.extend_from_slice(&(len as u32).to_le_bytes());
    request.encode_raw(&mut frame);
    frame
}

async fn write_frames(mut stdin: ChildStdin, mut frames: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(frame) = frames.recv().await {
        if stdin.write_all(&frame).await.is_err() || stdin.flush().await.is_err() {
            break;
        }
    }
}

async fn read_replies(
    mut stdout: ChildStdout,
    index: usize,
    generation: u64,
    events: mpsc::UnboundedSender<ProcEvent>,
) {
    loop {
        let mut header = [0u8; 4];
        if stdout.read_exact(&mut header).await.is_err() {
            break;
        }
        let mut body = vec![0u8; u32::from_le_bytes(header) as usize];
        if stdout.read_exact(&mut body).await.is_err() {
            break;
        }
        // Decoded from `Bytes`: the value is a slice of the frame, not a copy.
        match v1::ExecutorReply::decode(Bytes::from(body)) {
            Ok(reply) if !reply.published.is_empty() => {
                let _ = events.send(ProcEvent::Published(index, generation, reply.published));
            }
            Ok(reply) => {
                let _ = events.send(ProcEvent::Reply(index, generation, Box::new(reply)));
            }
            Err(e) => {
                tracing::error!(error = %e, "undecodable reply from a python executor");
                break;
            }
        }
    }
    let _ = events.send(ProcEvent::Exited(index, generation));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An executor keeps an eighth of its share of the worker's memory as free heap, never
    /// less than 64 MiB nor more than 1 GiB; the mmap threshold is fixed.
    #[test]
    fn malloc_tuning_follows_the_memory_share() {
        let trim = |limit, processes| malloc_tuning(limit, processes)[1].1;
        assert_eq!(trim(4 << 30, 2), 256 << 20);
        assert_eq!(trim(256 << 20, 2), 64 << 20, "small workers keep 64 MiB");
        assert_eq!(trim(64 << 30, 2), 1 << 30, "large ones at most 1 GiB");
        assert_eq!(trim(4 << 30, 0), 512 << 20, "no processes counts as one");
        assert_eq!(
            malloc_tuning(4 << 30, 2)[0],
            ("MALLOC_MMAP_THRESHOLD_", 64 << 20)
        );
    }
}
