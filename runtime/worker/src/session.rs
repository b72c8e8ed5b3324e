//! The worker's session: registers with the scheduler, then feeds the worker core
//! (`core.rs`) with scheduler messages, executor outcomes, fetched inputs and memory
//! samples, carries out what it asks (start tasks, fetch from peers, stop executors) and
//! sends its messages in batches. The data plane shares only the store. It also measures
//! the CPU the worker uses (cores busy, in each heartbeat) and times the fetches from
//! peers; the core gets the time from it.
//!
//! Not here: what to do with each event (the core), the memory policy (`memory.rs`),
//! parsing CPU figures (`cpu.rs`, `cgroup.rs`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

use crate::cgroup::Probe;
use crate::config::WorkerConfig;
use crate::core::{Effects, Fetched, WorkerCore};
use crate::cpu::CpuMeter;
use crate::data_plane::DataPlaneService;
use crate::executor::{BuiltinExecutor, ExecOutcome, ExecTask, Executor};
use crate::memory::{ExecutorMemory, Sample};
use crate::metrics::WorkerMetrics;
use crate::python::{PythonConfig, PythonPool};
use crate::store::Store;
use crate::store::lock;

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
    let spill_above = config.memory.store_target(config.memory_limit);
    let shared_dir = config
        .shared_dir
        .clone()
        .filter(|_| config.python.is_some());
    let store = Arc::new(Mutex::new(Store::new(
        config.spill_dir.clone(),
        spill_above,
        shared_dir.clone(),
    )));

    let probe = Probe::new();
    let python = config.python.as_ref().map(|program| {
        PythonPool::new(
            PythonConfig {
                program: program.clone(),
                processes: config.cores.max(1) as usize,
                worker_name: config.name.clone(),
                memory_limit: config.memory_limit,
                cgroup: probe.cgroup().cloned(),
                store_dir: shared_dir.clone(),
                spill_dir: config.spill_dir.clone(),
            },
            Arc::clone(&store),
        )
    });
    let data_plane = DataPlaneServer::new(DataPlaneService {
        store: Arc::clone(&store),
        publisher: python.as_ref().map(PythonPool::publisher),
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

    let register = v1::Register {
        version: Some(shoal_proto::version_info()),
        name: config.name.clone(),
        cores: config.cores,
        memory_limit: config.memory_limit,
        data_address: data_address.clone(),
        group: config.group.clone(),
        resources: config.resources.iter().cloned().collect(),
    };
    let (out_tx, inbound, first) = open_session(&config, register).await?;
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
    tracing::info!(
        worker = config.name,
        limit_mib = config.memory_limit >> 20,
        measured = probe.source(),
        thresholds = ?config.memory,
        "memory policy"
    );
    tracing::info!(
        worker = config.name,
        measured = probe.cpu_source(),
        "cpu use"
    );
    let started = Instant::now();
    let cpu = CpuMeter::new(probe.cpu_us(std::iter::empty()), started);
    let mut state = Session {
        core: WorkerCore::new(config.name.clone(), config.cores as usize, config.memory),
        store,
        out: out_tx,
        world: World {
            done_tx,
            fetch_tx,
            data: DataClients::new(config.token.clone()),
            builtin: BuiltinExecutor {
                worker_name: config.name.clone(),
            },
            python,
        },
        probe,
        memory_limit: config.memory_limit,
        metrics,
        started,
        cpu,
        cpu_cores: 0.0,
    };
    let result = state.run(first, inbound, done_rx, fetch_rx, &config).await;
    let _ = stop_tx.send(());
    let _ = server.await;
    result
}

/// How often memory is measured (the policy must act before the kernel does).
const MEMORY_SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The world the core acts on: executors, peer fetches.
struct World {
    done_tx: mpsc::UnboundedSender<ExecOutcome>,
    fetch_tx: mpsc::UnboundedSender<Fetched>,
    data: DataClients,
    builtin: BuiltinExecutor,
    /// Runs Python payloads (none when the worker was started without Python).
    python: Option<PythonPool>,
}

impl Effects for World {
    fn fetch(&mut self, peer: u32, address: &str, tasks: Vec<u64>, replicate: bool) {
        let data = self.data.clone();
        let tx = self.fetch_tx.clone();
        let address = address.to_owned();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = data.fetch(&address, tasks.clone()).await;
            let duration_us = started.elapsed().as_micros() as u64;
            let msg = match result {
                Ok(f) => Fetched::Done {
                    peer,
                    objects: f.objects,
                    missing: f.missing,
                    replicate,
                    duration_us,
                },
                Err(e) => Fetched::Failed {
                    tasks,
                    peer: address,
                    error: e.to_string(),
                    replicate,
                },
            };
            let _ = tx.send(msg);
        });
    }

    fn start(&mut self, task: ExecTask, python: bool) {
        match (python, &self.python) {
            (true, Some(pool)) => pool.start(task, self.done_tx.clone()),
            _ => self.builtin.start(task, self.done_tx.clone()),
        }
    }

    fn stop(&mut self, task: u64, error: v1::TaskError) {
        if let Some(pool) = &self.python {
            pool.stop(task, error);
        }
    }

    fn released(&mut self, tasks: &[u64]) {
        if let Some(pool) = &self.python {
            pool.release(tasks);
        }
    }

    fn publish(&mut self, tasks: Vec<u64>) {
        if let Some(pool) = &self.python {
            pool.publish(tasks);
        }
    }

    fn forget_peer(&mut self, address: &str) {
        self.data.forget(address);
    }
}

struct Session {
    core: WorkerCore,
    store: Arc<Mutex<Store>>,
    out: mpsc::Sender<v1::WorkerMessage>,
    world: World,
    probe: Probe,
    memory_limit: u64,
    metrics: WorkerMetrics,
    /// The session's clock starts here: the core's times are microseconds since.
    started: Instant,
    cpu: CpuMeter,
    /// Cores busy over the last heartbeat interval.
    cpu_cores: f64,
}

impl Session {
    async fn run(
        &mut self,
        first: v1::SchedulerMessage,
        mut inbound: tonic::Streaming<v1::SchedulerMessage>,
        mut done_rx: mpsc::UnboundedReceiver<ExecOutcome>,
        mut fetch_rx: mpsc::UnboundedReceiver<Fetched>,
        config: &WorkerConfig,
    ) -> Result<(), WorkerError> {
        let mut heartbeat = tokio::time::interval(Duration::from_secs(2));
        let mut memory = tokio::time::interval(MEMORY_SAMPLE_EVERY);
        memory.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if let Some(msg) = first.msg
            && self.on_scheduler_message(msg, &mut heartbeat, config)
        {
            return Ok(());
        }
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
                    if self.on_scheduler_message(msg, &mut heartbeat, config) {
                        return Ok(());
                    }
                }
                Some(outcome) = done_rx.recv() => {
                    let mut store = lock(&self.store);
                    self.core.on_outcome(outcome, &mut store);
                }
                Some(fetched) = fetch_rx.recv() => {
                    if let Fetched::Done { objects, replicate: false, .. } = &fetched {
                        let bytes: usize = objects.values().map(bytes::Bytes::len).sum();
                        self.metrics.fetched_bytes.inc_by(bytes as u64);
                    }
                    let now_us = self.now_us();
                    let mut store = lock(&self.store);
                    self.core.on_fetched(fetched, now_us, &mut store, &mut self.world);
                }
                _ = memory.tick() => self.sample_memory(),
                _ = heartbeat.tick() => self.heartbeat().await,
            }
            self.drain_outcomes(&mut done_rx);
            self.flush().await;
        }
    }

    /// Applies a message of the scheduler; true when it asks this worker to shut down.
    fn on_scheduler_message(
        &mut self,
        msg: Msg,
        heartbeat: &mut tokio::time::Interval,
        config: &WorkerConfig,
    ) -> bool {
        match msg {
            Msg::Registered(r) => {
                *heartbeat = tokio::time::interval(Duration::from_millis(u64::from(
                    r.heartbeat_interval_ms.max(100),
                )));
                tracing::info!(worker = config.name, id = r.worker_id, "registered");
            }
            Msg::Shutdown(s) => {
                tracing::info!(
                    worker = config.name,
                    reason = s.reason,
                    "shutting down as asked by the scheduler"
                );
                return true;
            }
            msg => {
                let mut store = lock(&self.store);
                self.core.on_message(msg, &mut store, &mut self.world);
            }
        }
        false
    }

    /// Takes the outcomes already there and starts what they free room for, until none
    /// are left: builtin ops finish inline, so a batch of cheap tasks runs in one go and
    /// is reported in one message.
    fn drain_outcomes(&mut self, done_rx: &mut mpsc::UnboundedReceiver<ExecOutcome>) {
        let mut store = lock(&self.store);
        loop {
            self.core.pump(&mut store, &mut self.world);
            let mut any = false;
            while let Ok(outcome) = done_rx.try_recv() {
                self.core.on_outcome(outcome, &mut store);
                any = true;
            }
            if !any {
                break;
            }
        }
    }

    /// Now on the session's clock, in microseconds.
    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// The executor processes and the task each runs.
    fn executor_processes(&self) -> Vec<(u32, Option<u64>)> {
        self.world
            .python
            .as_ref()
            .map(|p| p.processes())
            .unwrap_or_default()
    }

    fn sample_memory(&mut self) {
        let processes = self.executor_processes();
        let executors: Vec<ExecutorMemory> = processes
            .iter()
            .map(|&(pid, task)| ExecutorMemory {
                pid,
                task,
                resident: crate::cgroup::private_bytes(pid),
            })
            .collect();
        let mut store = lock(&self.store);
        let used = self.probe.used(
            processes.iter().map(|&(pid, _)| pid),
            store.shared_bytes() + store.shared_input_bytes(),
        );
        let sample = Sample {
            used,
            limit: self.memory_limit,
            stored: store.memory_bytes(),
            executors,
        };
        self.core.on_memory(&sample, &mut store, &mut self.world);
    }

    async fn heartbeat(&mut self) {
        let pids = self.executor_processes().into_iter().map(|(pid, _)| pid);
        let cpu_us = self.probe.cpu_us(pids);
        self.cpu_cores = self.cpu.read(cpu_us, Instant::now());
        self.metrics.cpu_cores.set(self.cpu_cores);
        let mut beat = self.core.heartbeat(&lock(&self.store));
        beat.cpu = self.cpu_cores;
        let stats = self.core.memory_stats();
        self.metrics
            .stored_bytes
            .set((beat.stored_bytes - beat.spilled_bytes) as i64);
        self.metrics.spilled_bytes.set(beat.spilled_bytes as i64);
        self.metrics.memory_bytes.set(beat.memory_used as i64);
        self.metrics.running.set(i64::from(beat.running));
        self.metrics.paused.set(i64::from(stats.paused));
        let reported = (
            self.metrics.memory_pauses.get(),
            self.metrics.memory_stopped.get(),
        );
        self.metrics
            .memory_pauses
            .inc_by(stats.pauses.saturating_sub(reported.0));
        self.metrics
            .memory_stopped
            .inc_by(stats.stopped_tasks.saturating_sub(reported.1));
        let dropped = self.core.transfers_dropped();
        self.metrics
            .transfers_dropped
            .inc_by(dropped.saturating_sub(self.metrics.transfers_dropped.get()));
        self.metrics.shared_written_bytes.inc_by(
            beat.shared_written_bytes
                .saturating_sub(self.metrics.shared_written_bytes.get()),
        );
        let msg = Out::Heartbeat(beat);
        let _ = self.out.send(v1::WorkerMessage { msg: Some(msg) }).await;
    }

    async fn flush(&mut self) {
        for mut msg in self.core.take_messages(self.now_us()) {
            match &mut msg {
                // Sent at once on a memory state change: with the last interval's figure.
                Out::Heartbeat(h) => h.cpu = self.cpu_cores,
                Out::Finished(f) => {
                    self.metrics.tasks_finished.inc_by(f.tasks.len() as u64);
                }
                Out::Failed(f) => {
                    self.metrics.tasks_failed.inc_by(f.tasks.len() as u64);
                }
                _ => {}
            }
            let _ = self.out.send(v1::WorkerMessage { msg: Some(msg) }).await;
        }
    }
}

/// How long a starting worker keeps trying to reach its scheduler: on Kubernetes the
/// worker pods often start before the scheduler listens.
const CONNECT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// Opens the session and registers, retrying with backoff for up to [`CONNECT_PATIENCE`]
/// while the scheduler cannot be reached or answers `Unavailable` (a scheduler pod that
/// is still starting behind its Service) or `Unimplemented`. A refusal (wrong token, other
/// version) is final.
/// Returns the scheduler's first message too: until it arrives, whatever answered may not
/// be a Shoal scheduler (a Service still routing to an old endpoint answered HTTP 404,
/// with no gRPC status, in an e2e run), and that is retried as well.
async fn open_session(
    config: &WorkerConfig,
    register: v1::Register,
) -> Result<
    (
        mpsc::Sender<v1::WorkerMessage>,
        tonic::Streaming<v1::SchedulerMessage>,
        v1::SchedulerMessage,
    ),
    WorkerError,
> {
    let address = config.scheduler.as_str();
    let start = std::time::Instant::now();
    let mut delay = std::time::Duration::from_millis(100);
    let mut told = false;
    loop {
        let cause = match shoal_client::channel(address).await {
            Ok(channel) => {
                let mut client =
                    WorkerSessionClient::with_interceptor(channel, AttachToken::new(&config.token))
                        .max_decoding_message_size(256 * 1024 * 1024)
                        .max_encoding_message_size(256 * 1024 * 1024);
                let (out_tx, out_rx) = mpsc::channel::<v1::WorkerMessage>(1024);
                let _ = out_tx
                    .send(v1::WorkerMessage {
                        msg: Some(Out::Register(register.clone())),
                    })
                    .await;
                let failure = match client.session(ReceiverStream::new(out_rx)).await {
                    Ok(response) => {
                        let mut inbound = response.into_inner();
                        match inbound.message().await {
                            Ok(Some(first)) => return Ok((out_tx, inbound, first)),
                            Ok(None) => tonic::Status::unavailable(
                                "the session closed before the scheduler answered",
                            ),
                            Err(status) => status,
                        }
                    }
                    Err(status) => status,
                };
                // Unimplemented: no WorkerSession here (yet), or an answer without a gRPC
                // status (tonic maps an HTTP 404 to it).
                if matches!(
                    failure.code(),
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Unimplemented
                ) && start.elapsed() < CONNECT_PATIENCE
                {
                    failure.message().to_string()
                } else {
                    return Err(WorkerError::Refused {
                        address: address.to_owned(),
                        message: failure.message().to_string(),
                    });
                }
            }
            Err(error) if start.elapsed() < CONNECT_PATIENCE => error.to_string(),
            Err(error) => return Err(error.into()),
        };
        if !told {
            tracing::info!(scheduler = address, %cause, "scheduler not reachable yet; retrying for up to {CONNECT_PATIENCE:?}");
            told = true;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(2));
    }
}
