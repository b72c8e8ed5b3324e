//! The HTTP side: unauthenticated `/metrics` (Prometheus), `/healthz` (process alive),
//! `/readyz` (the core answers), which change nothing and reveal no task data; and the
//! token-checked Dask-compatible autoscaling API under `/api/v1` (`api.rs`) and the
//! dashboard (`dashboard/http.rs`).

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::actor::{Actor, Event};
use crate::metrics::Metrics;
use shoal_proto::auth::Token;

#[derive(Clone)]
struct Shared {
    metrics: Metrics,
    actor: Actor,
}

pub fn spawn(listener: TcpListener, metrics: Metrics, actor: Actor, token: Token) {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(Shared {
            metrics,
            actor: actor.clone(),
        })
        .merge(crate::api::router(actor.clone(), token.clone()))
        .merge(crate::dashboard::http::router(actor, token));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
}

async fn metrics_text(State(shared): State<Shared>) -> String {
    shared.metrics.encode()
}

async fn ready(State(shared): State<Shared>) -> (StatusCode, &'static str) {
    let status = tokio::time::timeout(
        Duration::from_secs(5),
        shared.actor.ask(|reply| Event::Status { reply }),
    )
    .await;
    match status {
        Ok(Some(_)) => (StatusCode::OK, "ok"),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "scheduler core not answering",
        ),
    }
}
