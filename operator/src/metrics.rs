//! Prometheus metrics of the operator: reconcile counts, durations and errors by static
//! category; autoscaling (scale decisions by direction, retirements by outcome, the
//! current target per group); OOM kills of workers per group and of schedulers
//! (`shoal_worker_oom_kills_total`, `shoal_scheduler_oom_kills_total`: about the
//! clusters, not the operator, so without its prefix); clusters and workers from the
//! controller's cache at scrape time; ShoalJob reconciles and jobs finished by reason. Labels are bounded: namespace, cluster, group and
//! static words, never a pod name or error text.

use crate::crd::ShoalCluster;
use kube::runtime::reflector::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    namespace: String,
    cluster: String,
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    namespace: String,
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScaleLabels {
    namespace: String,
    cluster: String,
    group: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    namespace: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetireLabels {
    namespace: String,
    cluster: String,
    outcome: &'static str,
}

/// How a worker's retirement ended (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum RetireOutcome {
    /// The scheduler moved its data; the pod was deleted.
    Retired,
    /// The scheduler kept it (it stays).
    Refused,
    /// The scheduler could not be asked.
    Failed,
}

pub struct Metrics {
    registry: Registry,
    /// Series about the clusters themselves (prefix `shoal`).
    clusters: Registry,
    worker_oom_kills: Family<GroupLabels, Counter>,
    scheduler_oom_kills: Family<ClusterLabels, Counter>,
    reconciles: Counter,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
    scale_events: Family<ScaleLabels, Counter>,
    retirements: Family<RetireLabels, Counter>,
    targets: Family<GroupLabels, Gauge>,
    job_reconciles: Counter,
    job_errors: Family<ErrorLabels, Counter>,
    jobs_finished: Family<JobLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("shoal_operator");
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by error category",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            duration.clone(),
        );
        let scale_events = Family::<ScaleLabels, Counter>::default();
        let retirements = Family::<RetireLabels, Counter>::default();
        let targets = Family::<GroupLabels, Gauge>::default();
        registry.register(
            "scale_events",
            "Autoscaler decisions that changed a group's target, by direction",
            scale_events.clone(),
        );
        registry.register(
            "worker_retirements",
            "Workers sent to retirement, by outcome",
            retirements.clone(),
        );
        registry.register(
            "autoscaler_target_workers",
            "The worker pods each group's autoscaler wants now",
            targets.clone(),
        );
        let job_reconciles = Counter::default();
        let job_errors = Family::<ErrorLabels, Counter>::default();
        let jobs_finished = Family::<JobLabels, Counter>::default();
        registry.register(
            "job_reconciles",
            "ShoalJob reconciles run",
            job_reconciles.clone(),
        );
        registry.register(
            "job_reconcile_errors",
            "ShoalJob reconciles that failed, by error category",
            job_errors.clone(),
        );
        registry.register(
            "jobs_finished",
            "ShoalJobs finished, by the reason of their Complete or Failed condition",
            jobs_finished.clone(),
        );
        let mut clusters = Registry::with_prefix("shoal");
        let worker_oom_kills = Family::<GroupLabels, Counter>::default();
        let scheduler_oom_kills = Family::<ClusterLabels, Counter>::default();
        clusters.register(
            "worker_oom_kills",
            "Worker pods the kernel killed at their memory limit (OOMKilled), by group",
            worker_oom_kills.clone(),
        );
        clusters.register(
            "scheduler_oom_kills",
            "Scheduler containers the kernel killed at their memory limit (OOMKilled)",
            scheduler_oom_kills.clone(),
        );
        Self {
            registry,
            clusters,
            worker_oom_kills,
            scheduler_oom_kills,
            reconciles,
            errors,
            duration,
            scale_events,
            retirements,
            targets,
            job_reconciles,
            job_errors,
            jobs_finished,
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, took: Duration, error_category: Option<&'static str>) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
        if let Some(category) = error_category {
            self.errors.get_or_create(&ErrorLabels { category }).inc();
        }
    }

    /// One ShoalJob reconcile, and its error category if it failed.
    pub fn job_reconciled(&self, error_category: Option<&'static str>) {
        self.job_reconciles.inc();
        if let Some(category) = error_category {
            self.job_errors
                .get_or_create(&ErrorLabels { category })
                .inc();
        }
    }

    /// One ShoalJob finished, with the (static) reason of its final condition.
    pub fn job_finished(&self, namespace: &str, reason: &'static str) {
        self.jobs_finished
            .get_or_create(&JobLabels {
                namespace: namespace.to_owned(),
                reason,
            })
            .inc();
    }

    /// One scale decision of `group` that moved its target (`direction`: `Up` or `Down`).
    pub fn scaled(&self, namespace: &str, cluster: &str, group: &str, direction: &'static str) {
        self.scale_events
            .get_or_create(&ScaleLabels {
                namespace: namespace.to_owned(),
                cluster: cluster.to_owned(),
                group: group.to_owned(),
                direction,
            })
            .inc();
    }

    /// `count` workers of the cluster whose retirement ended with `outcome`.
    pub fn retirements(
        &self,
        namespace: &str,
        cluster: &str,
        outcome: RetireOutcome,
        count: usize,
    ) {
        if count == 0 {
            return;
        }
        self.retirements
            .get_or_create(&RetireLabels {
                namespace: namespace.to_owned(),
                cluster: cluster.to_owned(),
                outcome: outcome.into(),
            })
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// The current target of `group`.
    pub fn target(&self, namespace: &str, cluster: &str, group: &str, target: i32) {
        self.targets
            .get_or_create(&GroupLabels {
                namespace: namespace.to_owned(),
                cluster: cluster.to_owned(),
                group: group.to_owned(),
            })
            .set(i64::from(target));
    }

    /// One worker pod of `group` OOM-killed.
    pub fn worker_oom_killed(&self, namespace: &str, cluster: &str, group: &str) {
        self.worker_oom_kills
            .get_or_create(&GroupLabels {
                namespace: namespace.to_owned(),
                cluster: cluster.to_owned(),
                group: group.to_owned(),
            })
            .inc();
    }

    /// The cluster's scheduler container OOM-killed.
    pub fn scheduler_oom_killed(&self, namespace: &str, cluster: &str) {
        self.scheduler_oom_kills
            .get_or_create(&ClusterLabels {
                namespace: namespace.to_owned(),
                cluster: cluster.to_owned(),
            })
            .inc();
    }

    /// Forgets the per-cluster and per-group series of a deleted cluster.
    pub fn forget_cluster(&self, namespace: &str, cluster: &str, groups: &[String]) {
        for group in groups {
            let labels = GroupLabels {
                namespace: namespace.to_owned(),
                cluster: cluster.to_owned(),
                group: group.clone(),
            };
            self.targets.remove(&labels);
            self.worker_oom_kills.remove(&labels);
        }
        self.scheduler_oom_kills.remove(&ClusterLabels {
            namespace: namespace.to_owned(),
            cluster: cluster.to_owned(),
        });
    }

    /// The text exposition, with cluster and worker gauges read from `clusters`.
    pub fn encode(&self, clusters: Option<&Store<ShoalCluster>>) -> String {
        let mut out = String::new();
        let mut about_clusters = String::new();
        if encode(&mut out, &self.registry).is_err()
            || encode(&mut about_clusters, &self.clusters).is_err()
        {
            return String::new();
        }
        let out = format!(
            "{}{}",
            out.trim_end_matches("# EOF\n"),
            about_clusters.trim_end_matches("# EOF\n")
        );
        let all = clusters.map(Store::state).unwrap_or_default();
        let (ready, desired) =
            all.iter()
                .filter_map(|c| c.status.as_ref())
                .fold((0i64, 0i64), |(r, d), s| {
                    (
                        r + i64::from(s.ready_workers),
                        d + i64::from(s.desired_workers),
                    )
                });
        let gauge = |name: &str, help: &str, value: i64| {
            format!(
                "# HELP shoal_operator_{name} {help}.\n# TYPE shoal_operator_{name} gauge\nshoal_operator_{name} {value}\n"
            )
        };
        format!(
            "{out}{}{}{}# EOF\n",
            gauge(
                "clusters",
                "ShoalClusters the operator manages",
                i64::try_from(all.len()).unwrap_or(i64::MAX)
            ),
            gauge("workers_ready", "Worker pods ready, all clusters", ready),
            gauge(
                "workers_desired",
                "Worker pods wanted, all clusters",
                desired
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Errors are counted under their static category only.
    #[test]
    fn errors_are_labelled_by_category() {
        let metrics = Metrics::default();
        metrics.reconciled(Duration::from_millis(3), None);
        metrics.reconciled(Duration::from_millis(3), Some("Apply"));
        let text = metrics.encode(None);
        assert!(text.contains("shoal_operator_reconciles_total 2"), "{text}");
        assert!(
            text.contains("shoal_operator_reconcile_errors_total{category=\"Apply\"} 1"),
            "{text}"
        );
        assert!(text.contains("shoal_operator_clusters 0"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    /// Autoscaling series carry namespace, cluster, group and a static word only.
    #[test]
    fn autoscaling_series_are_labelled_by_group_and_direction() {
        let metrics = Metrics::default();
        metrics.scaled("ns", "demo", "highmem", "Up");
        metrics.retirements("ns", "demo", RetireOutcome::Refused, 2);
        metrics.target("ns", "demo", "highmem", 3);
        let text = metrics.encode(None);
        assert!(
            text.contains("shoal_operator_scale_events_total{namespace=\"ns\",cluster=\"demo\",group=\"highmem\",direction=\"Up\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("shoal_operator_worker_retirements_total{namespace=\"ns\",cluster=\"demo\",outcome=\"refused\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("shoal_operator_autoscaler_target_workers{namespace=\"ns\",cluster=\"demo\",group=\"highmem\"} 3"),
            "{text}"
        );
    }

    /// Job series carry the namespace and the static reason of the job's end only.
    #[test]
    fn jobs_are_counted_by_reason() {
        let metrics = Metrics::default();
        metrics.job_reconciled(None);
        metrics.job_reconciled(Some("Create"));
        metrics.job_finished("ns", "BackoffLimitExceeded");
        let text = metrics.encode(None);
        assert!(
            text.contains("shoal_operator_job_reconciles_total 2"),
            "{text}"
        );
        assert!(
            text.contains("shoal_operator_job_reconcile_errors_total{category=\"Create\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("shoal_operator_jobs_finished_total{namespace=\"ns\",reason=\"BackoffLimitExceeded\"} 1"),
            "{text}"
        );
    }

    /// OOM kills are counters per group (workers) and per cluster (scheduler), without
    /// the operator's prefix, and go with their cluster.
    #[test]
    fn oom_kills_are_counted_per_group_and_forgotten_with_the_cluster() {
        let metrics = Metrics::default();
        metrics.worker_oom_killed("ns", "demo", "default");
        metrics.worker_oom_killed("ns", "demo", "default");
        metrics.scheduler_oom_killed("ns", "demo");
        let text = metrics.encode(None);
        assert!(
            text.contains("# TYPE shoal_worker_oom_kills counter")
                && text.contains("shoal_worker_oom_kills_total{namespace=\"ns\",cluster=\"demo\",group=\"default\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("shoal_scheduler_oom_kills_total{namespace=\"ns\",cluster=\"demo\"} 1"),
            "{text}"
        );
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        metrics.forget_cluster("ns", "demo", &["default".to_owned()]);
        let text = metrics.encode(None);
        assert!(!text.contains("shoal_worker_oom_kills_total{"), "{text}");
    }
}
