//! The Dask-compatible autoscaling API on the HTTP port, for tools that speak to Dask's
//! scheduler (`dask-kubernetes`-style autoscalers): `GET /api/v1/adaptive_target` answers
//! `{"workers": N}` and `POST /api/v1/retire_workers` takes `{"workers": [names]}` or
//! `{"n": k}` and answers the retired workers keyed by name. Both need the cluster token as
//! `Authorization: Bearer <token>`. Not here: the estimate or retirement themselves (core).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use shoal_proto::auth::Token;
use shoal_proto::v1;

use crate::actor::{Actor, Event};

#[derive(Clone)]
struct Api {
    actor: Actor,
    token: Token,
}

pub fn router(actor: Actor, token: Token) -> Router {
    Router::new()
        .route("/api/v1/adaptive_target", get(adaptive_target))
        .route("/api/v1/retire_workers", post(retire_workers))
        .with_state(Api { actor, token })
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: String) -> Response {
    reply(status, json!({ "error": message }))
}

/// The 401 answer, unless the request carries the cluster's token (`None`).
fn refusal(api: &Api, headers: &HeaderMap) -> Option<Response> {
    let received = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    let message = match received {
        Some(token) if api.token.matches(token.trim()) => return None,
        Some(_) => format!(
            "wrong auth token: this cluster expects the token with fingerprint sha256:{}…; \
             pass it as the header `Authorization: Bearer <token>`",
            api.token.fingerprint()
        ),
        None => format!(
            "no auth token: pass the cluster's token (fingerprint sha256:{}…) as the header \
             `Authorization: Bearer <token>`, e.g. curl -H \"Authorization: Bearer $SHOAL_TOKEN\"",
            api.token.fingerprint()
        ),
    };
    Some(error(StatusCode::UNAUTHORIZED, message))
}

fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the scheduler is shutting down".into(),
    )
}

async fn adaptive_target(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Some(refused) = refusal(&api, &headers) {
        return refused;
    }
    let params = v1::AdaptiveParams::default();
    let Some(target) = api
        .actor
        .ask(|reply| Event::Adaptive { params, reply })
        .await
    else {
        return unavailable();
    };
    let workers: u64 = target
        .groups
        .iter()
        .map(|g| u64::from(g.desired_workers))
        .sum();
    reply(StatusCode::OK, json!({ "workers": workers }))
}

/// What a retire request names: workers by name, or the first `n` of the retire order.
fn parse_retire(body: &[u8]) -> Result<Result<Vec<String>, usize>, String> {
    const FORM: &str = "send {\"workers\": [\"name\", ...]} or {\"n\": k}";
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON ({e}); {FORM}"))?;
    match (value.get("workers"), value.get("n")) {
        (Some(Value::Array(names)), None) => names
            .iter()
            .map(|n| {
                n.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("worker name {n} is not a string; {FORM}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Ok),
        (None, Some(n)) => n
            .as_u64()
            .map(|n| Err(n as usize))
            .ok_or_else(|| format!("\"n\" must be a non-negative integer, got {n}; {FORM}")),
        _ => Err(format!(
            "expected exactly one of \"workers\" or \"n\"; {FORM}"
        )),
    }
}

async fn retire_workers(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = refusal(&api, &headers) {
        return refused;
    }
    let names = match parse_retire(&body) {
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
        Ok(Ok(names)) => names,
        Ok(Err(n)) => {
            let Some(order) = api.actor.ask(|reply| Event::RetireOrder { reply }).await else {
                return unavailable();
            };
            order.into_iter().take(n).collect()
        }
    };
    let Some(result) = api
        .actor
        .ask(|reply| Event::Retire {
            names,
            deadline_s: 0.0,
            reply,
        })
        .await
    else {
        return unavailable();
    };
    if result.retired.is_empty() && !result.refused.is_empty() {
        let mut reasons: Vec<String> = result
            .refused
            .iter()
            .map(|(name, why)| format!("{name}: {why}"))
            .collect();
        reasons.sort();
        return error(
            StatusCode::CONFLICT,
            format!("no worker was retired: {}", reasons.join("; ")),
        );
    }
    for (name, why) in &result.refused {
        tracing::warn!(worker = name, reason = why, "worker not retired (HTTP API)");
    }
    let body: serde_json::Map<String, Value> = result
        .retired
        .into_iter()
        .map(|name| (name.clone(), json!({ "name": name })))
        .collect();
    reply(StatusCode::OK, Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A retire body names workers or a count, and anything else is refused with the form.
    #[test]
    fn parse_retire_bodies() {
        assert_eq!(
            parse_retire(br#"{"workers": ["a", "b"]}"#),
            Ok(Ok(vec!["a".into(), "b".into()]))
        );
        assert_eq!(parse_retire(br#"{"n": 2}"#), Ok(Err(2)));
        for bad in [
            &b"nope"[..],
            br#"{}"#,
            br#"{"n": -1}"#,
            br#"{"workers": [1]}"#,
        ] {
            let err = parse_retire(bad).expect_err("refused");
            assert!(err.contains("{\"workers\""), "{err}");
        }
    }
}
