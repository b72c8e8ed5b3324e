//! The Python executor pool: `python -m shoal.executor` processes (one per core, started on
//! the first Python task) that run Python payloads. Frames are a 4-byte little-endian length
//! and one protobuf message (proto/shoal/v1/executor.proto) over each process's
//! stdin/stdout. A process that dies (segfault, `os._exit`, memory) fails only the task it
//! was running, with the cause, and is replaced; the tasks queued behind it run elsewhere.
//! The worker's memory policy may stop the process running a task (`Executor::stop`):
//! that task then fails with the policy's error, and the process is replaced.
//!
//! Large results stay live in the process that made it (python/shoal/executor.py): the
//! pool knows which process holds which, sends the tasks reading one to its holder when
//! that one is about as free as any other, and otherwise (or when a peer, the client or
//! the memory policy needs it) asks the holder to write it into the store first; the
//! tasks needing it wait meanwhile. A process that dies takes its live results with it:
//! they are reported lost (the scheduler recomputes them) and the tasks needing them fail
//! as missing inputs.
//!
//! Not here: what a payload means (python/shoal/executor.py), scheduling (the worker loop).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use shoal_proto::v1;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot};

use shoal_core::PrefixId;
use shoal_core::prefix::Prefixes;

use crate::executor::{ExecOutcome, ExecTask, Executor};
use crate::store::{Store, lock};

/// Most tasks sent ahead to one executor process when many are waiting.
const MAX_AHEAD: usize = 16;
/// What writing a live result into the store costs, for the process that must then read
/// it: fresh tmpfs pages written, mapped and read (bench/local_compare.py measures it at
/// the start of each run: 0.32-0.42 s/GiB here).
const WRITE_SECONDS_PER_GIB: f64 = 0.35;
/// The run time assumed for a task of a prefix none of whose tasks ended yet.
const UNKNOWN_TASK_US: f64 = 1000.0;
/// Thread-count variables of numeric libraries, set to 1 for executors unless set.
const SINGLE_THREADED: [&str; 4] = [
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
];
/// glibc malloc settings for executors unless set: chunk-sized arrays come from the heap
/// and freed memory is reused, not handed back to the kernel and faulted in again.
const MALLOC_TUNING: [(&str, &str); 2] = [
    ("MALLOC_MMAP_THRESHOLD_", "67108864"),
    ("MALLOC_TRIM_THRESHOLD_", "67108864"),
];
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

/// Asks the pool to write live results into the store (for the data plane: peers and the
/// client read files or bytes, never an executor's memory).
#[derive(Clone)]
pub struct Publisher(mpsc::UnboundedSender<PoolMsg>);

impl Publisher {
    /// Returns once each of `tasks` that is live is written, sent as bytes, or lost.
    pub async fn publish(&self, tasks: Vec<u64>) {
        let (tx, rx) = oneshot::channel();
        if self.0.send(PoolMsg::Publish(tasks, Some(tx))).is_ok() {
            let _ = rx.await;
        }
    }
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

/// The process (slot and generation) keeping a result live.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct LiveAt {
    index: usize,
    generation: u64,
}

/// A result kept live: where, and its size once written.
#[derive(Clone, Copy)]
struct Kept {
    at: LiveAt,
    size: u64,
}

/// Someone waiting for live results to be written: a job (it runs then), or a caller.
enum Waiter {
    Job(Job),
    Caller(oneshot::Sender<()>),
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
        for (var, value) in MALLOC_TUNING {
            if std::env::var_os(var).is_none() {
                command.env(var, value);
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

    /// Asks the processes keeping these results live to write them into the store; returns
    /// those to wait for. A result the store counts as live that no process keeps (its
    /// process died before the store heard of it) is lost now.
    fn request_publish(&mut self, tasks: impl IntoIterator<Item = u64>) -> HashSet<u64> {
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
    fn publish_for(&mut self, tasks: Vec<u64>, caller: Option<oneshot::Sender<()>>) {
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
    fn resolved(&mut self, task: u64) {
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
                Waiter::Job(job) => self.queue.push_front(job),
                Waiter::Caller(caller) => {
                    let _ = caller.send(());
                }
            }
        }
    }

    /// The process to send the job to: the one expected to start it first, counting the
    /// expected run time of the tasks queued there and the writing, still to come, of the
    /// job's inputs other processes keep live; among equals the one keeping most of them
    /// live, then the one holding most in its value cache. `None` when every process has
    /// `MAX_AHEAD` tasks.
    fn pick(&self, job: &Job) -> Option<usize> {
        let now = Instant::now();
        (0..self.slots.len())
            .filter_map(|i| {
                let process = self.slots[i].as_ref();
                if process.is_some_and(|p| p.inflight.len() >= MAX_AHEAD) {
                    return None;
                }
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
                    let full = kept.size as f64 * WRITE_SECONDS_PER_GIB * 1e6 / (1u64 << 30) as f64;
                    let done = self
                        .publishing
                        .get(task)
                        .map_or(0.0, |asked| now.duration_since(*asked).as_micros() as f64);
                    writing_us = writing_us.max(full - done);
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

    /// Whether `job` can run on process `index` with no input written first.
    fn runs_without_writing(&self, job: &Job, index: usize) -> bool {
        let here = self.slots[index].as_ref().map(|p| LiveAt {
            index,
            generation: p.generation,
        });
        job.task
            .input_tasks
            .iter()
            .all(|t| self.live.get(t).is_none_or(|k| Some(k.at) == here))
    }

    /// Jobs waiting for inputs to be written that the process keeping those inputs can
    /// now start sooner go back to the queue (the writing goes on for the others).
    fn repick_waiting(&mut self) {
        let mut back = Vec::new();
        let mut i = 0;
        while i < self.waiting.len() {
            let now_here = match &self.waiting[i].0 {
                Waiter::Job(job) => self
                    .pick(job)
                    .is_some_and(|index| self.runs_without_writing(job, index)),
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
                self.queue.push_front(job);
            }
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
            let Some(index) = self.pick(front) else {
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
            let generation = self.slots[index].as_ref().map(|p| p.generation);
            let elsewhere: Vec<u64> = job
                .task
                .input_tasks
                .iter()
                .copied()
                .filter(|t| {
                    self.live
                        .get(t)
                        .is_some_and(|k| Some(k.at.generation) != generation || k.at.index != index)
                })
                .collect();
            if !elsewhere.is_empty() {
                let pending = self.request_publish(elsewhere);
                if !pending.is_empty() {
                    self.waiting.push((Waiter::Job(job), pending));
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
            let prefix = self.prefixes.intern_key(&job.task.key);
            let expected_us = self.prefixes.duration_us(prefix).unwrap_or(UNKNOWN_TASK_US);
            process.queued_us += expected_us;
            request.tasks.push(v1::ExecTask {
                task: job.task.task,
                key: job.task.key.clone(),
                payload: Some(payload),
                inputs: job.task.inputs.clone(),
                input_tasks: job.task.input_tasks.clone(),
                in_store: job.task.in_store.clone(),
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

    /// Records where a live result went once its process was asked to write it.
    fn take_published(&mut self, from: LiveAt, answer: v1::Published) {
        use v1::published::Place;
        let task = answer.task;
        if self.live.get(&task).is_some_and(|k| k.at == from) {
            self.live.remove(&task);
        }
        {
            let mut store = lock(&self.store);
            let held = store.is_live(task);
            match answer.place {
                Some(Place::InStore(_)) if held => {
                    if let Err(e) = store.adopt(task) {
                        tracing::warn!(worker = self.config.worker_name, error = %e, "a written live result cannot be taken in");
                        store.lose(task);
                    }
                }
                Some(Place::InStore(_)) => store.discard_file(task),
                Some(Place::Value(data)) if held => {
                    if let Err(e) = store.put(task, Bytes::from(data)) {
                        tracing::warn!(worker = self.config.worker_name, error = %e, "cannot store a live result's bytes");
                    }
                }
                Some(Place::Value(_)) => {}
                Some(Place::Gone(_)) | None => {
                    if held {
                        store.lose(task);
                    }
                }
            }
        }
        self.resolved(task);
    }

    /// The results a dead process kept live are lost: the store reports them, jobs
    /// needing them fail as missing inputs, and whoever waited for them goes on.
    fn lose_live(&mut self, dead: LiveAt, pid: u32) {
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

    /// The task a dead executor was running fails: with the memory policy's error when
    /// the worker stopped it, else with the crash's cause.
    fn fail_crashed(
        &mut self,
        running: InFlight,
        pid: u32,
        stopped: Option<v1::TaskError>,
        status: Option<std::process::ExitStatus>,
    ) {
        let ran = running.sent.elapsed();
        let error = match stopped {
            Some(mut error) => {
                error.detail = format!(
                    "executor pid {pid}, the task ran {:.1}s; the worker started a new executor",
                    ran.as_secs_f64()
                );
                error
            }
            None if self.kernel_oom_killed() => self.kernel_oom_error(&running.key, pid, ran),
            None => self.crash_error(&running.key, pid, ran, status),
        };
        let _ = running.done.send(ExecOutcome {
            task: running.task,
            result: Err(error),
            in_store: false,
            live: None,
            lost_input: None,
            duration: ran,
        });
    }

    /// Deletes what a dead executor left in the shared-memory directory: its unsealed
    /// (half-written) files, and the sealed file of the task it was running, whose reply
    /// never came. Returns whether it was writing that task's result.
    fn remove_unsealed(&self, pid: u32, running: Option<u64>) -> bool {
        let Some(dir) = &self.config.store_dir else {
            return false;
        };
        let prefix = format!(".tmp-{pid}-");
        let mut writing = false;
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                    continue;
                };
                writing |= running.is_some_and(|t| rest == crate::store::file_name(t));
                let _ = std::fs::remove_file(entry.path());
            }
        }
        if let Some(task) = running {
            let _ = std::fs::remove_file(dir.join(crate::store::file_name(task)));
        }
        writing
    }

    /// Whether the kernel's OOM killer killed a process of this worker's cgroup since the
    /// last look (then an executor that died of SIGKILL was that process).
    fn kernel_oom_killed(&mut self) -> bool {
        let Some(now) = self
            .config
            .cgroup
            .as_ref()
            .and_then(crate::cgroup::Cgroup::oom_kills)
        else {
            return false;
        };
        let before = std::mem::replace(&mut self.oom_kills, now);
        now > before
    }

    /// The error of a task whose executor the kernel OOM-killed: the pod reached its limit
    /// faster than the worker's memory check (every 100 ms) could stop the task.
    fn kernel_oom_error(&self, key: &str, pid: u32, ran: Duration) -> v1::TaskError {
        let limit = self.config.memory_limit;
        tracing::warn!(
            worker = self.config.worker_name,
            task = key,
            pid,
            limit_mib = limit >> 20,
            "the kernel OOM-killed a python executor; starting a new one"
        );
        v1::TaskError {
            kind: "MemoryLimit".into(),
            message: format!(
                "task {key:?} on worker {:?}: the kernel OOM-killed (OOMKilled) its executor: \
                 the pod reached its memory limit of {} MiB faster than the worker could stop \
                 the task. The worker started a new executor; other tasks go on. Give workers \
                 more memory or make the task's chunks or partitions smaller",
                self.config.worker_name,
                limit >> 20
            ),
            detail: format!("executor pid {pid}, the task ran {:.1}s", ran.as_secs_f64()),
            worker: self.config.worker_name.clone(),
            memory: Some(Box::new(v1::MemoryFigures {
                used: limit,
                limit,
                threshold: 1.0,
                task_used: 0,
            })),
            ..Default::default()
        }
    }

    /// The error of a task whose executor died under it (not stopped by the worker).
    fn crash_error(
        &self,
        key: &str,
        pid: u32,
        ran: Duration,
        status: Option<std::process::ExitStatus>,
    ) -> v1::TaskError {
        let cause = describe_exit(status);
        let hint = crash_hint(status);
        tracing::warn!(
            worker = self.config.worker_name,
            task = key,
            pid,
            cause,
            "python executor died while running a task; starting a new one"
        );
        v1::TaskError {
            kind: "ExecutorCrashed".into(),
            message: format!(
                "task {key:?} stopped its Python executor on worker {:?}: {cause}. \
                 The worker started a new executor; other tasks go on. {hint}",
                self.config.worker_name
            ),
            detail: format!("executor pid {pid}, the task ran {:.1}s", ran.as_secs_f64()),
            worker: self.config.worker_name.clone(),
            ..Default::default()
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

fn signal_name(signal: i32) -> &'static str {
    match signal {
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        15 => "SIGTERM",
        _ => "a signal",
    }
}

fn describe_exit(status: Option<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("the executor exited with code {code}"),
            (_, Some(sig)) => format!("the executor was killed by {} ({sig})", signal_name(sig)),
            _ => "the executor ended".to_string(),
        },
        None => "the executor ended (status unknown)".to_string(),
    }
}

fn crash_hint(status: Option<std::process::ExitStatus>) -> &'static str {
    use std::os::unix::process::ExitStatusExt;
    match status.and_then(|s| s.signal()) {
        Some(11) | Some(7) | Some(4) => {
            "A crash like this comes from native code (a C extension, ctypes, a library bug)."
        }
        Some(9) => "SIGKILL is usually the kernel's OOM killer: the machine ran out of memory.",
        _ => {
            "Code that calls os._exit or exits the interpreter ends the executor; see the worker's log for its output."
        }
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
