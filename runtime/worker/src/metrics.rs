//! Prometheus metrics of a worker and its unauthenticated HTTP endpoint (`/metrics`,
//! `/healthz`, and `/readyz`: ready once the scheduler accepted the worker). Labels are
//! never task keys or names.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct WorkerMetrics {
    registry: Arc<Registry>,
    pub tasks_finished: Counter<u64, AtomicU64>,
    pub tasks_failed: Counter<u64, AtomicU64>,
    pub running: Gauge,
    pub stored_bytes: Gauge,
    pub spilled_bytes: Gauge,
    pub memory_bytes: Gauge,
    pub fetched_bytes: Counter<u64, AtomicU64>,
    /// 1 while the worker is paused for memory.
    pub paused: Gauge,
    pub memory_pauses: Counter<u64, AtomicU64>,
    pub memory_stopped: Counter<u64, AtomicU64>,
    /// Cores busy (worker and executors, or its pod) over the last heartbeat interval.
    pub cpu_cores: Gauge<f64, AtomicU64>,
    /// Peer transfers not reported to the scheduler (too many pending at once).
    pub transfers_dropped: Counter<u64, AtomicU64>,
    /// Bytes written into the shared-memory store.
    pub shared_written_bytes: Counter<u64, AtomicU64>,
    /// Set once the scheduler has accepted this worker's session.
    pub registered: Arc<AtomicBool>,
}

impl WorkerMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("shoal_worker");
        let m = WorkerMetrics {
            registry: Arc::new(Registry::default()),
            tasks_finished: Counter::default(),
            tasks_failed: Counter::default(),
            running: Gauge::default(),
            stored_bytes: Gauge::default(),
            spilled_bytes: Gauge::default(),
            memory_bytes: Gauge::default(),
            fetched_bytes: Counter::default(),
            paused: Gauge::default(),
            memory_pauses: Counter::default(),
            memory_stopped: Counter::default(),
            cpu_cores: Gauge::default(),
            transfers_dropped: Counter::default(),
            shared_written_bytes: Counter::default(),
            registered: Arc::new(AtomicBool::new(false)),
        };
        registry.register(
            "tasks_finished",
            "Tasks run to completion",
            m.tasks_finished.clone(),
        );
        registry.register(
            "tasks_failed",
            "Tasks that failed here",
            m.tasks_failed.clone(),
        );
        registry.register("running_tasks", "Tasks running now", m.running.clone());
        registry.register(
            "stored_bytes",
            "Bytes of results held in memory",
            m.stored_bytes.clone(),
        );
        registry.register(
            "spilled_bytes",
            "Bytes of results spilled to disk",
            m.spilled_bytes.clone(),
        );
        registry.register(
            "memory_bytes",
            "Memory in use by the worker's pod (its cgroup working set), or by the worker \
             and its executors where no cgroup limit is set",
            m.memory_bytes.clone(),
        );
        registry.register(
            "paused",
            "1 while the worker takes no new tasks because its memory is over the pause threshold",
            m.paused.clone(),
        );
        registry.register(
            "memory_pauses",
            "Times the worker paused for memory",
            m.memory_pauses.clone(),
        );
        registry.register(
            "memory_stopped_tasks",
            "Tasks stopped because the worker's memory passed the terminate threshold",
            m.memory_stopped.clone(),
        );
        registry.register(
            "fetched_bytes",
            "Bytes of inputs fetched from peers",
            m.fetched_bytes.clone(),
        );
        registry.register(
            "cpu_cores",
            "Cores busy over the last heartbeat interval: the worker's pod (its cgroup's CPU \
             time), or the worker and its executors where it has no cgroup of its own",
            m.cpu_cores.clone(),
        );
        registry.register(
            "transfers_dropped",
            "Peer transfers left out of the reports to the scheduler because too many were \
             pending",
            m.transfers_dropped.clone(),
        );
        registry.register(
            "shared_written_bytes",
            "Bytes written into the shared-memory store: results another process read (a \
             result read only by the executor that made it is never written), and inputs \
             fetched from peers",
            m.shared_written_bytes.clone(),
        );
        WorkerMetrics {
            registry: Arc::new(registry),
            ..m
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` on the listener.
    pub fn serve(&self, listener: TcpListener) {
        let metrics = self.clone();
        let registered = self.registered.clone();
        let app = Router::new()
            .route("/metrics", get(move || async move { metrics.encode() }))
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/readyz",
                get(move || async move {
                    if registered.load(Ordering::Relaxed) {
                        (StatusCode::OK, "ok")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "not registered with the scheduler",
                        )
                    }
                }),
            );
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "worker metrics server stopped");
            }
        });
    }
}
