//! Prometheus metrics of the scheduler: tasks by state, throughput, workers, memory.
//! Labels are bounded (task state only); names of tasks or workers never become labels.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use shoal_core::Core;

type Labels = Vec<(&'static str, &'static str)>;

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    tasks: Family<Labels, Gauge>,
    finished: Counter<u64, AtomicU64>,
    assigned: Counter<u64, AtomicU64>,
    workers: Gauge,
    worker_cores: Gauge,
    stored_bytes: Gauge,
    spilled_bytes: Gauge,
    worker_memory: Gauge,
    clients: Gauge,
    pub workers_lost: Counter<u64, AtomicU64>,
    dashboard: Counter<f64, AtomicU64>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("shoal_scheduler");
        let metrics = Metrics {
            registry: Arc::new(Registry::default()),
            tasks: Family::default(),
            finished: Counter::default(),
            assigned: Counter::default(),
            workers: Gauge::default(),
            worker_cores: Gauge::default(),
            stored_bytes: Gauge::default(),
            spilled_bytes: Gauge::default(),
            worker_memory: Gauge::default(),
            clients: Gauge::default(),
            workers_lost: Counter::default(),
            dashboard: Counter::default(),
        };
        registry.register("tasks", "Tasks by state", metrics.tasks.clone());
        registry.register("tasks_finished", "Tasks finished", metrics.finished.clone());
        registry.register(
            "tasks_assigned",
            "Task assignments sent to workers",
            metrics.assigned.clone(),
        );
        registry.register("workers", "Connected workers", metrics.workers.clone());
        registry.register(
            "worker_cores",
            "Cores of connected workers",
            metrics.worker_cores.clone(),
        );
        registry.register(
            "stored_bytes",
            "Bytes of results held by workers",
            metrics.stored_bytes.clone(),
        );
        registry.register(
            "spilled_bytes",
            "Bytes workers spilled to disk",
            metrics.spilled_bytes.clone(),
        );
        registry.register(
            "worker_memory_bytes",
            "Memory used by workers (last heartbeats)",
            metrics.worker_memory.clone(),
        );
        registry.register("clients", "Connected clients", metrics.clients.clone());
        registry.register(
            "workers_lost",
            "Workers lost (not retired)",
            metrics.workers_lost.clone(),
        );
        registry.register(
            "dashboard_seconds",
            "Time the scheduler spent building dashboard frames and snapshots",
            metrics.dashboard.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            ..metrics
        }
    }

    /// Copies the core's figures into the metrics (after each batch of events).
    pub fn observe(&self, core: &Core, assigned_total: u64) {
        let c = core.counts();
        for (state, value) in [
            ("waiting", c.waiting),
            ("ready", c.ready),
            ("assigned", c.assigned),
            ("memory", c.memory),
            ("released", c.released),
            ("erred", c.erred),
        ] {
            self.tasks
                .get_or_create(&vec![("state", state)])
                .set(value as i64);
        }
        let finished = core.finished_total();
        self.finished
            .inc_by(finished.saturating_sub(self.finished.get()));
        self.assigned
            .inc_by(assigned_total.saturating_sub(self.assigned.get()));
        let (mut n, mut cores, mut stored, mut spilled, mut memory) = (0, 0, 0, 0, 0);
        for (_, w) in core.workers_iter() {
            n += 1;
            cores += i64::from(w.cores);
            stored += w.stored_bytes as i64;
            spilled += w.spilled_bytes as i64;
            memory += w.memory_used as i64;
        }
        self.workers.set(n);
        self.worker_cores.set(cores);
        self.stored_bytes.set(stored);
        self.spilled_bytes.set(spilled);
        self.worker_memory.set(memory);
        self.clients.set(core.client_count() as i64);
    }

    /// The dashboard's running total of build time.
    pub fn dashboard_seconds(&self, total: f64) {
        let more = total - self.dashboard.get();
        if more > 0.0 {
            self.dashboard.inc_by(more);
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
