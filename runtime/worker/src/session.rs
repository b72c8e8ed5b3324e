//! The worker's main loop: registers with the scheduler, then reacts to assignments,
//! executor outcomes, fetched inputs and the heartbeat tick, reporting completions in
//! batches. One task owns this state; the data plane shares only the store.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use shoal_client::data::DataClients;
use shoal_proto::auth::{AttachToken, CheckToken};
use shoal_proto::incoming;
use shoal_proto::v1;
use shoal_proto::v1::data_plane_server::DataPlaneServer;
use shoal_proto::v1::scheduler_message::Msg;
use shoal_proto::v1::worker_message::Msg as Out;
use shoal_proto::v1::worker_session_client::WorkerSessionClient;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;

use crate::config::WorkerConfig;
use crate::data_plane::DataPlaneService;
use crate::executor::{BuiltinExecutor, ExecOutcome, ExecTask, Executor};
use crate::memory;
use crate::metrics::WorkerMetrics;
use crate::python::{PythonConfig, PythonPool};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot listen for the data plane on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Connect(#[from] shoal_client::ClientError),
    #[error("the scheduler at {address} refused this worker: {message}")]
    Refused { address: String, message: String },
    #[error("lost the connection to the scheduler at {address}: {cause}")]
    SchedulerLost { address: String, cause: String },
}

/// Runs a worker until the scheduler tells it to shut down (Ok) or is lost (Err).
pub async fn run(config: WorkerConfig) -> Result<(), WorkerError> {
    let listener =
        TcpListener::bind(&config.listen)
            .await
            .map_err(|source| WorkerError::Listen {
                addr: config.listen.clone(),
                source,
            })?;
    let local = listener
        .local_addr()
        .map_err(|source| WorkerError::Listen {
            addr: config.listen.clone(),
            source,
        })?;
    let host = config
        .advertise_host
        .clone()
        .unwrap_or_else(|| local.ip().to_string());
    let data_address = format!("{host}:{}", local.port());
    let metrics = WorkerMetrics::new();
    if let Some(addr) = &config.metrics_listen {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| WorkerError::Listen {
                addr: addr.clone(),
                source,
            })?;
        if let Ok(local) = listener.local_addr() {
            tracing::info!(worker = config.name, address = %local, "metrics listening");
        }
        metrics.serve(listener);
    }
    let spill_above = (config.memory_limit as f64 * config.spill_fraction) as u64;
    let store = Arc::new(Mutex::new(Store::new(
        config.spill_dir.clone(),
        spill_above,
    )));

    let data_plane = DataPlaneServer::new(DataPlaneService {
        store: Arc::clone(&store),
    })
    .max_encoding_message_size(256 * 1024 * 1024);
    let check = CheckToken {
        expected: config.token.clone(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(InterceptedService::new(data_plane, check))
            .serve_with_incoming_shutdown(incoming(listener), async {
                let _ = stop_rx.await;
            }),
    );

    let channel = connect_patiently(&config.scheduler).await?;
    let mut client =
        WorkerSessionClient::with_interceptor(channel, AttachToken::new(&config.token))
            .max_decoding_message_size(256 * 1024 * 1024)
            .max_encoding_message_size(256 * 1024 * 1024);
    let (out_tx, out_rx) = mpsc::channel::<v1::WorkerMessage>(1024);
    let register = v1::Register {
        version: Some(shoal_proto::version_info()),
        name: config.name.clone(),
        cores: config.cores,
        memory_limit: config.memory_limit,
        data_address: data_address.clone(),
        group: config.group.clone(),
        resources: config.resources.iter().cloned().collect(),
    };
    let _ = out_tx
        .send(v1::WorkerMessage {
            msg: Some(Out::Register(register)),
        })
        .await;
    let inbound = client
        .session(ReceiverStream::new(out_rx))
        .await
        .map_err(|s| WorkerError::Refused {
            address: config.scheduler.clone(),
            message: s.message().to_string(),
        })?
        .into_inner();
    tracing::info!(
        worker = config.name,
        data_address,
        scheduler = config.scheduler,
        "worker connected"
    );
    metrics
        .registered
        .store(true, std::sync::atomic::Ordering::Relaxed);

    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let (fetch_tx, fetch_rx) = mpsc::unbounded_channel();
    let mut state = Loop {
        name: config.name.clone(),
        cores: config.cores.max(1) as usize,
        store,
        peers: HashMap::new(),
        waiting: HashMap::new(),
        needed_by: HashMap::new(),
        fetched: HashMap::new(),
        ready: VecDeque::new(),
        running: HashSet::new(),
        builtin_tasks: HashSet::new(),
        builtin_running: 0,
        finished: Vec::new(),
        failed: Vec::new(),
        added: Vec::new(),
        out: out_tx,
        done_tx,
        fetch_tx,
        data: DataClients::new(config.token.clone()),
        builtin: BuiltinExecutor {
            worker_name: config.name.clone(),
        },
        python: config.python.as_ref().map(|program| {
            PythonPool::new(PythonConfig {
                program: program.clone(),
                processes: config.cores.max(1) as usize,
                worker_name: config.name.clone(),
                memory_limit: config.memory_limit,
            })
        }),
        blobs: HashMap::new(),
        metrics,
    };
    let result = state.run(inbound, done_rx, fetch_rx, &config).await;
    let _ = stop_tx.send(());
    let _ = server.await;
    result
}

fn is_python(assignment: &v1::TaskAssignment) -> bool {
    matches!(
        assignment.payload.as_ref().and_then(|p| p.kind.as_ref()),
        Some(v1::task_payload::Kind::Python(_))
    )
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

/// An assigned task waiting for inputs from peers.
struct Waiting {
    assignment: v1::TaskAssignment,
    missing: usize,
}

/// Inputs fetched from peers, and the tasks they came for.
enum Fetch {
    Done {
        objects: HashMap<u64, Bytes>,
        missing: Vec<u64>,
        replicate: bool,
    },
    Failed {
        tasks: Vec<u64>,
        peer: String,
        error: String,
        replicate: bool,
    },
}

struct Loop {
    name: String,
    cores: usize,
    store: Arc<Mutex<Store>>,
    peers: HashMap<u32, String>,
    waiting: HashMap<u64, Waiting>,
    /// Input id -> tasks waiting for it.
    needed_by: HashMap<u64, Vec<u64>>,
    /// Inputs fetched from peers, with the number of queued tasks still to read them.
    fetched: HashMap<u64, (Bytes, usize)>,
    ready: VecDeque<v1::TaskAssignment>,
    running: HashSet<u64>,
    /// Builtin tasks among `running` (they are limited to `cores` at once).
    builtin_tasks: HashSet<u64>,
    builtin_running: usize,
    finished: Vec<v1::TaskFinished>,
    failed: Vec<v1::TaskFailed>,
    added: Vec<u64>,
    out: mpsc::Sender<v1::WorkerMessage>,
    done_tx: mpsc::UnboundedSender<ExecOutcome>,
    fetch_tx: mpsc::UnboundedSender<Fetch>,
    data: DataClients,
    builtin: BuiltinExecutor,
    /// Runs Python payloads (none when the worker was started without Python).
    python: Option<PythonPool>,
    /// Shared payload blobs by id (sent once by the scheduler, kept for later tasks).
    blobs: HashMap<u64, Bytes>,
    metrics: WorkerMetrics,
}

impl Loop {
    async fn run(
        &mut self,
        mut inbound: tonic::Streaming<v1::SchedulerMessage>,
        mut done_rx: mpsc::UnboundedReceiver<ExecOutcome>,
        mut fetch_rx: mpsc::UnboundedReceiver<Fetch>,
        config: &WorkerConfig,
    ) -> Result<(), WorkerError> {
        let mut heartbeat = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                msg = inbound.message() => {
                    let msg = match msg {
                        Ok(Some(v1::SchedulerMessage { msg: Some(m) })) => m,
                        Ok(Some(_)) => continue,
                        Ok(None) => return Err(WorkerError::SchedulerLost {
                            address: config.scheduler.clone(),
                            cause: "the scheduler closed the session".into(),
                        }),
                        Err(s) => return Err(WorkerError::SchedulerLost {
                            address: config.scheduler.clone(),
                            cause: s.message().to_string(),
                        }),
                    };
                    match msg {
                        Msg::Registered(r) => {
                            heartbeat = tokio::time::interval(Duration::from_millis(u64::from(r.heartbeat_interval_ms.max(100))));
                            tracing::info!(worker = self.name, id = r.worker_id, "registered");
                        }
                        Msg::Assign(a) => {
                            for blob in a.blobs {
                                self.blobs.insert(blob.id, Bytes::from(blob.data));
                            }
                            self.assign(a.tasks);
                        }
                        Msg::Release(r) => self.release(&r.tasks),
                        Msg::Cancel(c) => self.cancel(&c.tasks),
                        Msg::Peers(p) => {
                            for peer in p.added {
                                self.peers.insert(peer.worker_id, peer.data_address);
                            }
                            for id in p.removed {
                                if let Some(address) = self.peers.remove(&id) {
                                    self.data.forget(&address);
                                }
                            }
                        }
                        Msg::Replicate(r) => self.replicate(r.tasks),
                        Msg::Shutdown(s) => {
                            tracing::info!(worker = self.name, reason = s.reason, "shutting down as asked by the scheduler");
                            return Ok(());
                        }
                    }
                }
                Some(outcome) = done_rx.recv() => {
                    self.completed(outcome);
                    while let Ok(outcome) = done_rx.try_recv() {
                        self.completed(outcome);
                    }
                }
                Some(fetch) = fetch_rx.recv() => self.fetched(fetch),
                _ = heartbeat.tick() => self.heartbeat().await,
            }
            self.pump(&mut done_rx);
            self.flush().await;
        }
    }

    fn assign(&mut self, tasks: Vec<v1::TaskAssignment>) {
        let mut to_fetch: HashMap<u32, Vec<u64>> = HashMap::new();
        for assignment in tasks {
            let mut missing = 0;
            {
                let store = lock(&self.store);
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
            self.spawn_fetch(holder, ids, false);
        }
    }

    fn spawn_fetch(&self, holder: u32, ids: Vec<u64>, replicate: bool) {
        let Some(address) = self.peers.get(&holder).cloned() else {
            let _ = self.fetch_tx.send(Fetch::Failed {
                tasks: ids,
                peer: format!("worker id {holder}"),
                error: "no such peer (it left the cluster)".into(),
                replicate,
            });
            return;
        };
        let data = self.data.clone();
        let tx = self.fetch_tx.clone();
        tokio::spawn(async move {
            let msg = match data.fetch(&address, ids.clone()).await {
                Ok(f) => Fetch::Done {
                    objects: f.objects,
                    missing: f.missing,
                    replicate,
                },
                Err(e) => Fetch::Failed {
                    tasks: ids,
                    peer: address,
                    error: e.to_string(),
                    replicate,
                },
            };
            let _ = tx.send(msg);
        });
    }

    fn fetched(&mut self, fetch: Fetch) {
        match fetch {
            Fetch::Done {
                objects,
                missing,
                replicate: true,
            } => {
                let mut store = lock(&self.store);
                for (id, data) in objects {
                    if store.put(id, data).is_ok() {
                        self.added.push(id);
                    }
                }
                drop(store);
                if !missing.is_empty() {
                    tracing::warn!(
                        worker = self.name,
                        count = missing.len(),
                        "results to replicate were gone from their holder"
                    );
                }
            }
            Fetch::Failed {
                tasks,
                peer,
                error,
                replicate: true,
            } => {
                tracing::warn!(
                    worker = self.name,
                    peer,
                    error,
                    count = tasks.len(),
                    "replication failed"
                );
            }
            Fetch::Done {
                objects, missing, ..
            } => {
                let bytes: usize = objects.values().map(Bytes::len).sum();
                self.metrics.fetched_bytes.inc_by(bytes as u64);
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
                    self.input_lost(id, "its holder no longer has it".into());
                }
            }
            Fetch::Failed {
                tasks, peer, error, ..
            } => {
                tracing::warn!(worker = self.name, peer, error, "cannot fetch inputs");
                for id in tasks {
                    self.input_lost(id, format!("fetch from {peer} failed: {error}"));
                }
            }
        }
    }

    /// An input could not be fetched: every task waiting for it goes back to the scheduler.
    fn input_lost(&mut self, input: u64, cause: String) {
        for task in self.needed_by.remove(&input).unwrap_or_default() {
            let Some(w) = self.waiting.remove(&task) else {
                continue;
            };
            self.drop_fetched_inputs(&w.assignment);
            let missing_from = looked_on(&w.assignment, input);
            self.failed.push(v1::TaskFailed {
                task,
                error: Some(v1::TaskError {
                    kind: "InputLost".into(),
                    message: format!("input of task {:?} unavailable: {cause}", w.assignment.key),
                    detail: String::new(),
                    worker: self.name.clone(),
                    ..Default::default()
                }),
                missing_input: true,
                missing_task: input,
                missing_from,
            });
        }
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

    /// Starts ready tasks while cores are free. Outcomes that are already there (builtin
    /// ops finish inline) are taken at once, so a batch of cheap tasks runs in one go and is
    /// reported in one message.
    fn pump(&mut self, done_rx: &mut mpsc::UnboundedReceiver<ExecOutcome>) {
        loop {
            while let Ok(outcome) = done_rx.try_recv() {
                self.completed(outcome);
            }
            if !self.can_start_next() {
                break;
            }
            self.start_ready();
        }
    }

    /// Builtin tasks run at most `cores` at once; Python tasks go to the executor pool at
    /// once (it queues them for its processes, so they never wait on a round trip here).
    fn can_start_next(&self) -> bool {
        match self.ready.front() {
            None => false,
            Some(a) => is_python(a) || self.builtin_running < self.cores,
        }
    }

    fn start_ready(&mut self) {
        while self.can_start_next() {
            let Some(assignment) = self.ready.pop_front() else {
                break;
            };
            let mut inputs = Vec::with_capacity(assignment.inputs.len());
            let mut lost = None;
            {
                let store = lock(&self.store);
                for input in &assignment.inputs {
                    if let Some(data) = store.get(input.task) {
                        inputs.push(data);
                    } else if let Some((data, _)) = self.fetched.get(&input.task) {
                        inputs.push(data.clone());
                    } else {
                        lost = Some(input.task);
                        break;
                    }
                }
            }
            self.drop_fetched_inputs(&assignment);
            if let Some(input) = lost {
                let missing_from = looked_on(&assignment, input);
                self.failed.push(v1::TaskFailed {
                    task: assignment.task,
                    error: Some(v1::TaskError {
                        kind: "InputLost".into(),
                        message: format!(
                            "input of task {:?} was released before it ran",
                            assignment.key
                        ),
                        detail: String::new(),
                        worker: self.name.clone(),
                        ..Default::default()
                    }),
                    missing_input: true,
                    missing_task: input,
                    missing_from,
                });
                continue;
            }
            self.running.insert(assignment.task);
            if !is_python(&assignment) {
                self.builtin_running += 1;
                self.builtin_tasks.insert(assignment.task);
            }
            let payload = assignment.payload.unwrap_or_default();
            let python = match &payload.kind {
                Some(v1::task_payload::Kind::Python(p)) => Some(p.shared),
                _ => None,
            };
            let task = ExecTask {
                task: assignment.task,
                key: assignment.key,
                shared: python
                    .filter(|&id| id != 0)
                    .and_then(|id| self.blobs.get(&id).map(|b| (id, b.clone()))),
                payload,
                inputs,
                input_tasks: assignment.inputs.iter().map(|i| i.task).collect(),
            };
            match (&python, &self.python) {
                (Some(_), Some(pool)) => pool.start(task, self.done_tx.clone()),
                _ => self.builtin.start(task, self.done_tx.clone()),
            }
        }
    }

    fn completed(&mut self, outcome: ExecOutcome) {
        if !self.running.remove(&outcome.task) {
            return;
        }
        if self.builtin_tasks.remove(&outcome.task) {
            self.builtin_running -= 1;
        }
        match outcome.result {
            Ok(data) => {
                let size = data.len() as u64;
                let put = lock(&self.store).put(outcome.task, data);
                match put {
                    Ok(()) => self.finished.push(v1::TaskFinished {
                        task: outcome.task,
                        size,
                        duration_us: outcome.duration.as_micros() as u64,
                    }),
                    Err(e) => self.failed.push(v1::TaskFailed {
                        task: outcome.task,
                        error: Some(v1::TaskError {
                            kind: "SpillFailed".into(),
                            message: e.to_string(),
                            detail: String::new(),
                            worker: self.name.clone(),
                            ..Default::default()
                        }),
                        missing_input: false,
                        missing_task: 0,
                        missing_from: None,
                    }),
                }
            }
            Err(error) => self.failed.push(v1::TaskFailed {
                task: outcome.task,
                error: Some(error),
                missing_input: false,
                missing_task: 0,
                missing_from: None,
            }),
        }
    }

    fn release(&mut self, ids: &[u64]) {
        let mut store = lock(&self.store);
        for &id in ids {
            store.remove(id);
        }
        if let Some(pool) = &self.python {
            pool.release(ids);
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

    fn replicate(&mut self, tasks: Vec<v1::DataLocation>) {
        let mut by_holder: HashMap<u32, Vec<u64>> = HashMap::new();
        for t in tasks {
            let holder = t.workers.first().copied().unwrap_or(u32::MAX);
            by_holder.entry(holder).or_default().push(t.task);
        }
        for (holder, ids) in by_holder {
            self.spawn_fetch(holder, ids, true);
        }
    }

    async fn heartbeat(&mut self) {
        let (stored, spilled) = {
            let store = lock(&self.store);
            (store.memory_bytes(), store.spilled_bytes())
        };
        let resident = memory::resident_bytes();
        self.metrics.stored_bytes.set(stored as i64);
        self.metrics.spilled_bytes.set(spilled as i64);
        self.metrics.memory_bytes.set(resident as i64);
        self.metrics.running.set(self.running.len() as i64);
        let msg = Out::Heartbeat(v1::Heartbeat {
            memory_used: resident,
            stored_bytes: stored + spilled,
            spilled_bytes: spilled,
            running: self.running.len() as u32,
        });
        let _ = self.out.send(v1::WorkerMessage { msg: Some(msg) }).await;
    }

    async fn flush(&mut self) {
        self.metrics
            .tasks_finished
            .inc_by(self.finished.len() as u64);
        self.metrics.tasks_failed.inc_by(self.failed.len() as u64);
        if !self.finished.is_empty() {
            let tasks = std::mem::take(&mut self.finished);
            let _ = self
                .out
                .send(v1::WorkerMessage {
                    msg: Some(Out::Finished(v1::TasksFinished { tasks })),
                })
                .await;
        }
        if !self.failed.is_empty() {
            let tasks = std::mem::take(&mut self.failed);
            let _ = self
                .out
                .send(v1::WorkerMessage {
                    msg: Some(Out::Failed(v1::TasksFailed { tasks })),
                })
                .await;
        }
        if !self.added.is_empty() {
            let tasks = std::mem::take(&mut self.added);
            let _ = self
                .out
                .send(v1::WorkerMessage {
                    msg: Some(Out::DataAdded(v1::DataAdded { tasks })),
                })
                .await;
        }
    }
}

/// How long a starting worker keeps trying to reach its scheduler: on Kubernetes the
/// worker pods often start before the scheduler listens.
const CONNECT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// Connects to the scheduler, retrying with backoff for up to [`CONNECT_PATIENCE`].
async fn connect_patiently(
    address: &str,
) -> Result<tonic::transport::Channel, shoal_client::ClientError> {
    let start = std::time::Instant::now();
    let mut delay = std::time::Duration::from_millis(100);
    let mut told = false;
    loop {
        match shoal_client::channel(address).await {
            Ok(channel) => return Ok(channel),
            Err(error) if start.elapsed() < CONNECT_PATIENCE => {
                if !told {
                    tracing::info!(scheduler = address, %error, "scheduler not reachable yet; retrying for up to {CONNECT_PATIENCE:?}");
                    told = true;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(2));
            }
            Err(error) => return Err(error),
        }
    }
}

/// The worker an assignment named as the holder of `input` (the one it is fetched from).
fn looked_on(assignment: &v1::TaskAssignment, input: u64) -> Option<u32> {
    assignment
        .inputs
        .iter()
        .find(|i| i.task == input)
        .and_then(|i| i.workers.first().copied())
}
