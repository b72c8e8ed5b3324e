//! Prometheus metrics of the operator: reconcile counts, durations and errors by static
//! category, and clusters and workers from the controller's cache at scrape time.
//! Labels are bounded: never a name or error text.

use crate::crd::ShoalCluster;
use kube::runtime::reflector::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    category: &'static str,
}

pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
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
        Self {
            registry,
            reconciles,
            errors,
            duration,
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

    /// The text exposition, with cluster and worker gauges read from `clusters`.
    pub fn encode(&self, clusters: Option<&Store<ShoalCluster>>) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            return String::new();
        }
        let out = out.trim_end_matches("# EOF\n").to_owned();
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
}
