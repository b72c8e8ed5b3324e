//! The one task that owns the core. Services send it [`Event`]s; it applies a batch of
//! them, runs placement once, flushes the buffered messages, and updates the metrics.
//! Not here: decoding requests (services) or fetching data (gather).

use std::time::Instant;

use shoal_core::{
    ClientId, Core, GraphError, GraphSummary, GroupEstimate, GroupSpec, Loss, LossAnswer, NewTask,
    Payload, Resources, TaskRef, TaskState, WorkerId,
};
use shoal_proto::convert::error_from_wire;
use shoal_proto::v1;
use shoal_proto::v1::scheduler_message::Msg;
use shoal_proto::v1::worker_message::Msg as WorkerMsg;
use tokio::sync::{mpsc, oneshot};

use crate::comm::{ClientSender, GrpcComm, WorkerSender};
use crate::config::SchedulerConfig;
use crate::dashboard::board::Board;
use crate::dashboard::view::Summary;
use crate::metrics::Metrics;

/// Most events applied before placement runs and messages are flushed.
const BATCH: usize = 4096;

/// A retirement's deadline when the caller gives none.
pub const DEFAULT_RETIRE_DEADLINE_S: f64 = 60.0;

/// Pending copies of a retiring worker are asked again this many times before the deadline.
const RETIRE_RETRIES: u32 = 2;

/// Where gathered keys can be fetched from: per worker data address, (task wire id, index
/// of the key in `keys`). Keys that cannot be gathered are in `problems`.
#[derive(Default)]
pub struct Located {
    pub keys: Vec<String>,
    pub by_worker: Vec<(String, Vec<(u64, u32)>)>,
    pub problems: Vec<String>,
}

pub enum Event {
    ClientConnected {
        name: String,
        reply: oneshot::Sender<ClientId>,
    },
    ClientSubscribed {
        client: ClientId,
        sender: ClientSender,
    },
    ClientGone {
        client: ClientId,
    },
    Graph {
        client: ClientId,
        tasks: Vec<NewTask>,
        /// Shared payload blobs (id, bytes) of the submission.
        blobs: Vec<(u64, Vec<u8>)>,
        reply: oneshot::Sender<Result<GraphSummary, GraphError>>,
    },
    Release {
        client: ClientId,
        keys: Vec<String>,
        cancel: bool,
    },
    Locate {
        keys: Vec<String>,
        reply: oneshot::Sender<Located>,
    },
    WorkerRegistered {
        register: v1::Register,
        sender: WorkerSender,
        reply: oneshot::Sender<Result<WorkerId, String>>,
    },
    WorkerMessage {
        worker: WorkerId,
        msg: WorkerMsg,
    },
    WorkerGone {
        worker: WorkerId,
        cause: String,
    },
    Status {
        reply: oneshot::Sender<v1::ClusterStatus>,
    },
    Retire {
        names: Vec<String>,
        /// Seconds to wait for their data to move (0: 60 s).
        deadline_s: f64,
        reply: oneshot::Sender<v1::RetireWorkersResult>,
    },
    /// A retirement in progress reached a retry point (`deadline_s: None`) or its deadline.
    RetireTimer {
        worker: WorkerId,
        deadline_s: Option<f64>,
    },
    /// The autoscaling estimate for these groups (empty: the connected workers' groups).
    Adaptive {
        params: v1::AdaptiveParams,
        reply: oneshot::Sender<v1::AdaptiveTarget>,
    },
    /// Names of workers in the order they should be retired (all groups, idle first).
    RetireOrder {
        reply: oneshot::Sender<Vec<String>>,
    },
    /// The operator says why a worker went away (or is going): the answer names the
    /// tasks it was running.
    LostReason {
        name: String,
        loss: Loss,
        reply: oneshot::Sender<LossAnswer>,
    },
    /// The wait for the cause of a dropped connection is over.
    LossWaitOver {
        worker: WorkerId,
    },
    /// A dashboard viewer at this cursor asks for what it has not seen.
    Dashboard {
        since: Option<crate::dashboard::view::Cursor>,
        reply: oneshot::Sender<Vec<(crate::dashboard::view::Cursor, std::sync::Arc<str>)>>,
    },
    /// Once a second: the dashboard samples the cluster's size (and builds a frame while
    /// watched).
    DashboardTick,
    /// What ran since a point in time (task stream and transfers).
    TaskStream {
        since_unix_us: u64,
        reply: oneshot::Sender<v1::TaskStream>,
    },
    /// The scheduler is stopping: every worker is told to shut down.
    Stop {
        reply: oneshot::Sender<()>,
    },
}

/// A cheap handle to send events to the actor.
#[derive(Clone)]
pub struct Actor {
    tx: mpsc::UnboundedSender<Event>,
}

impl Actor {
    pub fn send(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// Sends an event carrying a reply channel and waits for the reply.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Event) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx));
        rx.await.ok()
    }

    /// `ask` for an RPC handler: no reply means the scheduler is stopping.
    pub async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Event,
    ) -> Result<T, tonic::Status> {
        self.ask(make)
            .await
            .ok_or_else(|| tonic::Status::unavailable("the scheduler is shutting down"))
    }
}

pub fn spawn(config: SchedulerConfig, metrics: Metrics) -> Actor {
    let (tx, rx) = mpsc::unbounded_channel();
    let actor = Actor { tx: tx.clone() };
    let state = State {
        me: actor.clone(),
        core: Core::new(config.core.clone()),
        comm: GrpcComm::default(),
        config,
        metrics,
        idle_since: Some(Instant::now()),
        lost_reasons: Default::default(),
        awaiting_cause: Default::default(),
        stopping: false,
        board: Board::new(rand::random()),
    };
    drop(tx);
    let ticker = actor.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            every.tick().await;
            if ticker.tx.send(Event::DashboardTick).is_err() {
                break;
            }
        }
    });
    tokio::spawn(run(state, rx));
    actor
}

struct State {
    /// Its own handle, for timers that come back as events.
    me: Actor,
    core: Core,
    comm: GrpcComm,
    config: SchedulerConfig,
    metrics: Metrics,
    idle_since: Option<Instant>,
    /// Causes reported by the operator for workers still connected (by name).
    lost_reasons: std::collections::HashMap<String, Loss>,
    /// Workers whose connection dropped, held (paused, no messages) for a short while
    /// until the operator says why: worker -> (name, the connection's error).
    awaiting_cause: std::collections::HashMap<WorkerId, (String, String)>,
    /// Set once workers were told to shut down: their departures are not losses.
    stopping: bool,
    /// What the dashboard and performance reports show.
    board: Board,
}

/// The wall clock in Unix microseconds (the dashboard's and reports' time axis).
fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

async fn run(mut state: State, mut rx: mpsc::UnboundedReceiver<Event>) {
    while let Some(event) = rx.recv().await {
        state.handle(event);
        for _ in 1..BATCH {
            match rx.try_recv() {
                Ok(event) => state.handle(event),
                Err(_) => break,
            }
        }
        state.core.schedule(&mut state.comm);
        state.comm.flush();
        for worker in std::mem::take(&mut state.comm.shut_down) {
            state.comm.remove_worker(worker);
        }
        state.after_batch();
    }
}

impl State {
    fn handle(&mut self, event: Event) {
        match event {
            Event::ClientConnected { name, reply } => {
                let client = self.core.on_client_connected(&name);
                self.comm.add_client(client);
                tracing::info!(client = %client, name, "client connected");
                let _ = reply.send(client);
            }
            Event::ClientSubscribed { client, sender } => {
                self.comm.subscribe_client(client, sender);
            }
            Event::ClientGone { client } => {
                self.core.on_client_disconnected(client, &mut self.comm);
                self.comm.remove_client(client);
                let live: std::collections::HashSet<u64> = self
                    .core
                    .tasks_iter()
                    .filter_map(|(_, t)| match &t.payload {
                        Payload::Python(p) if p.shared != 0 => Some(p.shared),
                        _ => None,
                    })
                    .collect();
                self.comm.retain_blobs(&live);
                tracing::info!(client = %client, "client disconnected; its keys were released");
            }
            Event::Graph {
                client,
                tasks,
                blobs,
                reply,
            } => {
                let count = tasks.len();
                let result = self.add_graph(client, tasks, blobs);
                match &result {
                    Ok(summary) => {
                        tracing::debug!(client = %client, tasks = count, graph = summary.graph_id, "graph accepted")
                    }
                    Err(e) => tracing::warn!(client = %client, error = %e, "graph refused"),
                }
                let _ = reply.send(result);
            }
            Event::Release {
                client,
                keys,
                cancel,
            } => {
                if cancel {
                    self.core.on_cancel(client, &keys, &mut self.comm);
                } else {
                    self.core.on_release(client, &keys, &mut self.comm);
                }
            }
            Event::Locate { keys, reply } => {
                let _ = reply.send(self.locate(keys));
            }
            Event::WorkerRegistered {
                register,
                sender,
                reply,
            } => self.register_worker(register, sender, reply),
            Event::WorkerMessage { worker, msg } => self.worker_message(worker, msg),
            Event::WorkerGone { worker, cause } => self.worker_gone(worker, cause),
            Event::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Event::Retire {
                names,
                deadline_s,
                reply,
            } => self.retire(names, deadline_s, reply),
            Event::RetireTimer { worker, deadline_s } => match deadline_s {
                None => self.core.on_retire_stalled(worker, &mut self.comm),
                Some(d) => self.core.on_retire_deadline(worker, d, &mut self.comm),
            },
            Event::Adaptive { params, reply } => {
                let _ = reply.send(self.adaptive(params));
            }
            Event::RetireOrder { reply } => {
                let groups = self.core.groups_of_workers();
                let order = self
                    .core
                    .adaptive_target(&groups, 0.0)
                    .into_iter()
                    .flat_map(|g| g.retire_order)
                    .collect();
                let _ = reply.send(order);
            }
            Event::Dashboard { since, reply } => {
                let summary = self.summary();
                let hidden = |w| self.awaiting_cause.contains_key(&w);
                let frames = self
                    .board
                    .view(&self.core, &summary, since, Instant::now(), &hidden);
                self.metrics.dashboard_seconds(self.board.busy_seconds());
                let _ = reply.send(frames);
            }
            Event::DashboardTick => {
                let summary = self.summary();
                let hidden = |w| self.awaiting_cause.contains_key(&w);
                self.board
                    .tick(&self.core, &summary, unix_us(), Instant::now(), &hidden);
                self.metrics.dashboard_seconds(self.board.busy_seconds());
            }
            Event::TaskStream {
                since_unix_us,
                reply,
            } => {
                let _ = reply.send(self.board.task_stream(&self.core, since_unix_us));
            }
            Event::Stop { reply } => {
                let workers: Vec<WorkerId> = self.core.workers_iter().map(|(id, _)| id).collect();
                for worker in workers {
                    self.comm.send_worker(
                        worker,
                        Msg::Shutdown(v1::Shutdown {
                            reason: "the scheduler is stopping".into(),
                        }),
                    );
                }
                self.comm.flush();
                self.stopping = true;
                tracing::info!("scheduler stopping; workers told to shut down");
                let _ = reply.send(());
            }
            Event::LostReason { name, loss, reply } => {
                tracing::warn!(
                    worker = name,
                    cause = loss.describe(),
                    "worker loss reported by the operator"
                );
                let answer = self.core.on_loss_reported(&name, &loss);
                let waiting = self
                    .awaiting_cause
                    .iter()
                    .find(|(_, (n, _))| *n == name)
                    .map(|(&w, _)| w);
                match waiting {
                    Some(worker) => {
                        if let Some((_, connection)) = self.awaiting_cause.remove(&worker) {
                            self.finish_loss(worker, with_connection(loss, &connection));
                        }
                    }
                    None if self.core.workers_iter().any(|(_, w)| w.name == name) => {
                        self.lost_reasons.insert(name, loss);
                    }
                    None => {}
                }
                let _ = reply.send(answer);
            }
            Event::LossWaitOver { worker } => {
                if let Some((_, connection)) = self.awaiting_cause.remove(&worker) {
                    let loss = Loss {
                        detail: connection,
                        ..Loss::default()
                    };
                    self.finish_loss(worker, loss);
                }
            }
        }
    }

    fn locate(&self, keys: Vec<String>) -> Located {
        let mut by_worker: std::collections::HashMap<WorkerId, Vec<(u64, u32)>> =
            Default::default();
        let mut problems = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            let Some(id) = self.core.find_key(key) else {
                problems.push(format!(
                    "unknown key {key:?} (never submitted, or released)"
                ));
                continue;
            };
            match self.core.task(id).state {
                TaskState::Memory(holder) => by_worker
                    .entry(holder)
                    .or_default()
                    .push((self.core.task_ref(id).to_wire(), index as u32)),
                TaskState::Erred => problems.push(format!(
                    "key {key:?} failed: {}",
                    self.core
                        .error_of(id)
                        .map(|e| e.message.as_str())
                        .unwrap_or("unknown error")
                )),
                state => problems.push(format!(
                    "key {key:?} is not finished (it is {})",
                    state.name()
                )),
            }
        }
        let by_worker = by_worker
            .into_iter()
            .map(|(w, items)| (self.core.worker(w).data_address.clone(), items))
            .collect();
        Located {
            keys,
            by_worker,
            problems,
        }
    }

    /// Checks that every shared blob a task names was sent, then adds the graph.
    fn add_graph(
        &mut self,
        client: ClientId,
        tasks: Vec<NewTask>,
        blobs: Vec<(u64, Vec<u8>)>,
    ) -> Result<GraphSummary, GraphError> {
        let sent: std::collections::HashSet<u64> = blobs.iter().map(|(id, _)| *id).collect();
        for task in &tasks {
            if let Payload::Python(p) = &task.payload
                && p.shared != 0
                && !sent.contains(&p.shared)
                && !self.comm.blobs.contains_key(&p.shared)
            {
                return Err(GraphError::UnknownBlob {
                    key: task.key.to_string(),
                    id: p.shared,
                });
            }
        }
        let summary = self.core.on_graph(client, tasks, &mut self.comm)?;
        for (id, data) in blobs {
            self.comm.blobs.entry(id).or_insert_with(|| data.into());
        }
        Ok(summary)
    }

    fn register_worker(
        &mut self,
        register: v1::Register,
        sender: WorkerSender,
        reply: oneshot::Sender<Result<WorkerId, String>>,
    ) {
        let added = self.core.on_worker_added(
            &register.name,
            register.cores,
            register.memory_limit,
            &register.data_address,
            &register.group,
            Resources::new(register.resources.clone()),
        );
        let worker = match added {
            Ok(w) => w,
            Err(e) => {
                let _ = reply.send(Err(e.to_string()));
                return;
            }
        };
        self.comm.add_worker(worker, sender);
        self.board.record.worker_joined(worker, &register.name);
        self.comm.send_worker(
            worker,
            Msg::Registered(v1::Registered {
                worker_id: worker.0,
                version: Some(shoal_proto::version_info()),
                heartbeat_interval_ms: self.config.heartbeat_interval.as_millis() as u32,
            }),
        );
        let peer = |id: WorkerId, w: &shoal_core::Worker| v1::Peer {
            worker_id: id.0,
            name: w.name.clone(),
            data_address: w.data_address.clone(),
        };
        let all: Vec<v1::Peer> = self
            .core
            .workers_iter()
            .map(|(id, w)| peer(id, w))
            .collect();
        let me = peer(worker, self.core.worker(worker));
        for (id, _) in self.core.workers_iter() {
            let added = if id == worker {
                all.clone()
            } else {
                vec![me.clone()]
            };
            self.comm.send_worker(
                id,
                Msg::Peers(v1::PeersChanged {
                    added,
                    removed: vec![],
                }),
            );
        }
        tracing::info!(
            worker = register.name,
            id = %worker,
            cores = register.cores,
            group = register.group,
            memory_limit = register.memory_limit,
            address = register.data_address,
            "worker registered"
        );
        let _ = reply.send(Ok(worker));
    }

    fn worker_message(&mut self, worker: WorkerId, msg: WorkerMsg) {
        if self.core.find_worker(worker).is_none() {
            return;
        }
        match msg {
            WorkerMsg::Register(_) => {}
            WorkerMsg::Heartbeat(h) => {
                self.core
                    .on_worker_heartbeat(worker, h.memory_used, h.spilled_bytes);
                self.board
                    .record
                    .heartbeat(worker, h.cpu, h.running, h.shared_written_bytes);
                let paused = h.state == v1::WorkerState::Paused as i32;
                if self.core.on_worker_paused(worker, paused) {
                    tracing::info!(
                        worker = self.core.worker(worker).name,
                        memory_used_mib = h.memory_used >> 20,
                        "{}",
                        if paused {
                            "worker paused for memory: its new tasks go to other workers"
                        } else {
                            "worker resumed: it takes tasks again"
                        }
                    );
                }
            }
            WorkerMsg::Finished(batch) => {
                let now_us = unix_us();
                for t in batch.tasks {
                    self.board.task_ended(
                        &self.core,
                        worker,
                        TaskRef::from_wire(t.task),
                        (now_us, t.duration_us, t.size),
                        true,
                    );
                    self.core.on_task_finished(
                        worker,
                        TaskRef::from_wire(t.task),
                        t.size,
                        t.duration_us,
                        &mut self.comm,
                    );
                }
            }
            WorkerMsg::Failed(batch) => {
                for t in batch.tasks {
                    let task = TaskRef::from_wire(t.task);
                    if t.missing_input {
                        let tried = t.missing_from.map_or(worker, WorkerId);
                        self.core.on_input_missing(
                            worker,
                            task,
                            TaskRef::from_wire(t.missing_task),
                            tried,
                            &mut self.comm,
                        );
                        continue;
                    }
                    let error = error_from_wire(t.error.unwrap_or_default());
                    self.board
                        .task_failed(&self.core, worker, task, unix_us(), &error);
                    if let Some(key) = self.core.resolve(task).map(|t| t.key.to_string()) {
                        tracing::warn!(
                            task = key,
                            worker = self.core.worker(worker).name,
                            kind = error.kind,
                            error = error.message,
                            "task failed"
                        );
                    }
                    self.core
                        .on_task_failed(worker, task, error, &mut self.comm);
                }
            }
            WorkerMsg::DataAdded(added) => {
                let refs: Vec<TaskRef> = added.tasks.into_iter().map(TaskRef::from_wire).collect();
                self.core.on_data_added(worker, &refs, &mut self.comm);
            }
            WorkerMsg::Lost(lost) => {
                let refs: Vec<TaskRef> = lost.tasks.into_iter().map(TaskRef::from_wire).collect();
                self.core.on_data_lost(worker, &refs, &mut self.comm);
            }
            WorkerMsg::Transfers(batch) => {
                let now_us = unix_us();
                for t in &batch.transfers {
                    self.board
                        .record
                        .transfer(now_us, worker, WorkerId(t.from), t);
                }
            }
        }
    }

    /// A worker's connection ended. With a cause already reported, or no wait for one
    /// configured, it is a loss now; else the worker is paused and cut off, and the loss
    /// waits (briefly) for the operator to say why, so its tasks' errors carry the cause.
    fn worker_gone(&mut self, worker: WorkerId, cause: String) {
        if self.stopping || self.awaiting_cause.contains_key(&worker) {
            return;
        }
        let Some(name) = self.core.find_worker(worker).map(|w| w.name.clone()) else {
            return;
        };
        self.comm.remove_worker(worker);
        if let Some(loss) = self.lost_reasons.remove(&name) {
            self.finish_loss(worker, with_connection(loss, &cause));
            return;
        }
        let wait = self.config.loss_report_wait;
        if wait.is_zero() {
            let loss = Loss {
                detail: cause,
                ..Loss::default()
            };
            self.finish_loss(worker, loss);
            return;
        }
        self.core.on_worker_paused(worker, true);
        self.awaiting_cause.insert(worker, (name, cause));
        let actor = self.me.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            actor.send(Event::LossWaitOver { worker });
        });
    }

    fn finish_loss(&mut self, worker: WorkerId, loss: Loss) {
        let Some(name) = self.core.find_worker(worker).map(|w| w.name.clone()) else {
            return;
        };
        match self.core.on_worker_lost(worker, &loss, &mut self.comm) {
            Ok(report) => tracing::warn!(
                worker = name,
                cause = loss.describe(),
                rerun = report.rerun,
                recomputed = report.recomputed,
                failed = report.failed.len(),
                "worker lost: its running tasks will run elsewhere, its results are recomputed"
            ),
            Err(e) => tracing::debug!(error = %e, "loss of an unknown worker"),
        }
        self.metrics.workers_lost.inc();
        self.board.record.worker_left(worker);
        for id in self.comm.worker_ids() {
            self.comm.send_worker(
                id,
                Msg::Peers(v1::PeersChanged {
                    added: vec![],
                    removed: vec![worker.0],
                }),
            );
        }
    }

    fn retire(
        &mut self,
        names: Vec<String>,
        deadline_s: f64,
        reply: oneshot::Sender<v1::RetireWorkersResult>,
    ) {
        let deadline_s = if deadline_s > 0.0 && deadline_s.is_finite() {
            deadline_s
        } else {
            DEFAULT_RETIRE_DEADLINE_S
        };
        let mut result = v1::RetireWorkersResult::default();
        let mut waiting = Vec::new();
        for name in names {
            let Some(id) = self.core.find_worker_by_name(&name) else {
                result.refused.insert(
                    name.clone(),
                    format!("no worker named {name:?} is connected"),
                );
                continue;
            };
            let (tx, rx) = oneshot::channel();
            self.comm.retire_waiters.insert(name.clone(), tx);
            if let Err(e) = self.core.on_retire(id, &mut self.comm) {
                self.comm.retire_waiters.remove(&name);
                result.refused.insert(name, e.to_string());
                continue;
            }
            if self.comm.retire_waiters.contains_key(&name) {
                self.retire_timers(id, deadline_s);
            }
            waiting.push((name, rx));
        }
        tokio::spawn(async move {
            for (name, rx) in waiting {
                match rx.await {
                    Ok(Ok(())) => result.retired.push(name),
                    Ok(Err(reason)) => {
                        result.refused.insert(name, reason);
                    }
                    Err(_) => {
                        result.refused.insert(name, "scheduler stopped".into());
                    }
                }
            }
            let _ = reply.send(result);
        });
    }

    /// Retry points, then the deadline, of a retirement in progress.
    fn retire_timers(&self, worker: WorkerId, deadline_s: f64) {
        let actor = self.me.clone();
        tokio::spawn(async move {
            let step = deadline_s / f64::from(RETIRE_RETRIES + 1);
            for _ in 0..RETIRE_RETRIES {
                tokio::time::sleep(std::time::Duration::from_secs_f64(step)).await;
                actor.send(Event::RetireTimer {
                    worker,
                    deadline_s: None,
                });
            }
            tokio::time::sleep(std::time::Duration::from_secs_f64(step)).await;
            actor.send(Event::RetireTimer {
                worker,
                deadline_s: Some(deadline_s),
            });
        });
    }

    /// The estimate for the operator's groups (remembered: they decide which resource
    /// requests are satisfiable), or for the connected workers' groups.
    fn adaptive(&mut self, params: v1::AdaptiveParams) -> v1::AdaptiveTarget {
        let groups: Vec<GroupSpec> = params
            .groups
            .into_iter()
            .map(|g| GroupSpec {
                name: if g.name.is_empty() {
                    shoal_core::adaptive::DEFAULT_GROUP.into()
                } else {
                    g.name
                },
                cores: g.cores,
                memory_limit: g.memory_limit,
                resources: Resources::new(g.resources),
            })
            .collect();
        let groups = if groups.is_empty() {
            self.core.groups_of_workers()
        } else {
            self.core.set_known_groups(groups.clone());
            groups
        };
        let estimate = self
            .core
            .adaptive_target(&groups, params.target_duration_seconds);
        self.adaptive_wire(estimate)
    }

    fn adaptive_wire(&self, estimate: Vec<GroupEstimate>) -> v1::AdaptiveTarget {
        v1::AdaptiveTarget {
            groups: estimate
                .into_iter()
                .map(|g| v1::GroupTarget {
                    name: g.name,
                    desired_workers: g.desired_workers,
                    reason: g.reason,
                    retire_order: g.retire_order,
                    workers: g.workers,
                })
                .collect(),
            idle_seconds: self.idle_seconds(),
            clients: self.core.client_count() as u32,
            unfinished_tasks: self.core.counts().unfinished(),
        }
    }

    fn idle_seconds(&self) -> f64 {
        self.idle_since
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or(0.0)
    }

    fn status(&self) -> v1::ClusterStatus {
        let counts = self.core.counts();
        let adaptive = self.adaptive_wire(
            self.core
                .adaptive_target(&self.core.groups_of_workers(), 0.0),
        );
        v1::ClusterStatus {
            version: Some(shoal_proto::version_info()),
            cluster_name: self.config.cluster_name.clone(),
            // A worker whose connection dropped is not shown while its loss waits for a
            // cause: it is gone, whatever the cause turns out to be.
            workers: self
                .core
                .workers_iter()
                .filter(|(id, _)| !self.awaiting_cause.contains_key(id))
                .map(|(id, w)| v1::WorkerStatus {
                    cpu: self.board.record.liveness(id).cpu,
                    running: self.board.record.liveness(id).running,
                    shared_written_bytes: self.board.record.liveness(id).shared_written,
                    name: w.name.clone(),
                    cores: w.cores,
                    memory_limit: w.memory_limit,
                    memory_used: w.memory_used,
                    stored_bytes: w.stored_bytes,
                    spilled_bytes: w.spilled_bytes,
                    assigned_tasks: w.assigned,
                    state: if w.paused && w.is_active() {
                        "paused".to_owned()
                    } else {
                        format!("{:?}", w.state).to_lowercase()
                    },
                    data_address: w.data_address.clone(),
                    group: w.group.clone(),
                    resources: w
                        .resources
                        .iter()
                        .map(|(n, a)| (n.to_string(), a))
                        .collect(),
                })
                .collect(),
            tasks: Some(v1::TaskCounts {
                waiting: counts.waiting,
                ready: counts.ready,
                assigned: counts.assigned,
                memory: counts.memory,
                released: counts.released,
                erred: counts.erred,
                finished_total: self.core.finished_total(),
            }),
            desired_workers: adaptive.groups.iter().map(|g| g.desired_workers).sum(),
            idle_seconds: self.idle_seconds(),
            clients: self.core.client_count() as u32,
            adaptive: Some(adaptive),
        }
    }

    /// Cluster-wide figures for the dashboard.
    fn summary(&self) -> Summary {
        let estimate = self
            .core
            .adaptive_target(&self.core.groups_of_workers(), 0.0);
        Summary {
            name: self.config.cluster_name.clone(),
            version: shoal_proto::version_info().runtime_version,
            clients: self.core.client_count() as u32,
            idle_seconds: self.idle_seconds(),
            desired: estimate.iter().map(|g| g.desired_workers).sum(),
            reason: estimate
                .iter()
                .map(|g| format!("{}: {}", g.name, g.reason))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    fn after_batch(&mut self) {
        let counts = self.core.counts();
        // Idle: no unfinished task and no connected client.
        let busy = counts.unfinished() > 0 || self.core.client_count() > 0;
        match (busy, self.idle_since) {
            (true, Some(_)) => self.idle_since = None,
            (false, None) => self.idle_since = Some(Instant::now()),
            _ => {}
        }
        self.metrics.observe(&self.core, self.comm.assigned);
    }
}

/// A reported loss, with the connection's own error added to its detail.
fn with_connection(mut loss: Loss, connection: &str) -> Loss {
    if !connection.is_empty() {
        if !loss.detail.is_empty() {
            loss.detail.push_str("; ");
        }
        loss.detail.push_str("connection: ");
        loss.detail.push_str(connection);
    }
    loss
}
