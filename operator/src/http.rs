//! The operator's unauthenticated HTTP side: `/metrics`, `/healthz` (the process runs)
//! and `/readyz` (it reached the API server). Nothing here changes state.

use crate::crd::ShoalCluster;
use crate::metrics::Metrics;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use kube::runtime::reflector::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

#[derive(Clone, Default)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    pub clusters: Arc<OnceLock<Store<ShoalCluster>>>,
}

pub fn router(state: HttpState) -> Router {
    let metrics = state.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || async move { metrics.metrics.encode(metrics.clusters.get()) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || async move {
                if state.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ok")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not connected to the API server yet",
                    )
                }
            }),
        )
}
