//! The dashboard on the scheduler's HTTP port. Every URL the page uses is relative, so it
//! works under any path prefix (jupyter-server-proxy, `kubectl port-forward`, an Ingress).
//! - `GET status`: the page. `GET /` redirects to it.
//! - `GET dashboard/<asset>`: its JavaScript and CSS, embedded in the binary (open: they
//!   reveal nothing, and the login page uses the CSS).
//! - `GET api/v1/dashboard/events`: the live stream (Server-Sent Events, one JSON delta per
//!   frame, `id:` = the cursor, so a reconnecting `EventSource` resumes with deltas).
//! - `GET api/v1/dashboard?since=<cursor>`: the same deltas as one JSON array (polling).
//! - `GET api/v1/performance_report?since_unix_us=`: a standalone HTML report.
//!
//! Authentication as on every other call: `Authorization: Bearer <token>`, or the cookie a
//! link's `?token=` or the login form (`POST login`) sets (a digest of the token, HttpOnly,
//! scoped to the path it was set under). Without either: 401, with the login form for the
//! page. Not here: what the frames hold (`view.rs`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures::{Stream, StreamExt, stream};
use shoal_proto::auth::Token;

use super::assets;
use super::view::Cursor;
use crate::actor::{Actor, Event};

const COOKIE: &str = "shoal_dashboard";
/// How often the page gets a frame.
const FRAME_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone)]
struct Dash {
    actor: Actor,
    token: Token,
}

pub fn router(actor: Actor, token: Token) -> Router {
    Router::new()
        .route("/", get(|| async { redirect("status", None) }))
        .route("/status", get(page))
        .route("/login", post(login))
        .route("/dashboard/{asset}", get(asset))
        .route("/api/v1/dashboard", get(poll))
        .route("/api/v1/dashboard/events", get(events))
        .route("/api/v1/performance_report", get(report))
        .with_state(Dash { actor, token })
}

/// Whether the request carries the token (header) or the dashboard cookie.
fn authorized(dash: &Dash, headers: &HeaderMap) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    if bearer.is_some_and(|t| dash.token.matches(t.trim())) {
        return true;
    }
    let wanted = dash.token.cookie_value();
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .any(|(name, value)| name == COOKIE && constant_eq(value, &wanted))
}

fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A relative redirect (resolved by the browser against the current URL, so any prefix
/// stays), setting the cookie when given.
fn redirect(to: &str, cookie: Option<String>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response();
    if let Some(value) = cookie
        && let Ok(v) = format!("{COOKIE}={value}; HttpOnly; SameSite=Lax").parse()
    {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

fn refused_json(dash: &Dash) -> Response {
    let body = serde_json::json!({
        "error": format!(
            "no or wrong auth token: open the dashboard link with ?token=<the cluster's \
             token> (fingerprint sha256:{}…), log in on the page, or send \
             `Authorization: Bearer <token>`",
            dash.token.fingerprint()
        )
    });
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn login_page(dash: &Dash, wrong: bool) -> Response {
    let note = if wrong {
        "That token is not this cluster's. "
    } else {
        ""
    };
    let body = assets::LOGIN
        .replace("{{note}}", note)
        .replace("{{fingerprint}}", &dash.token.fingerprint());
    (StatusCode::UNAUTHORIZED, Html(body)).into_response()
}

async fn page(
    State(dash): State<Dash>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = query.get("token") {
        return if dash.token.matches(token) {
            redirect("status", Some(dash.token.cookie_value()))
        } else {
            login_page(&dash, true)
        };
    }
    if !authorized(&dash, &headers) {
        return login_page(&dash, false);
    }
    ([(header::CACHE_CONTROL, "no-store")], Html(assets::INDEX)).into_response()
}

async fn login(State(dash): State<Dash>, Form(form): Form<HashMap<String, String>>) -> Response {
    match form.get("token") {
        Some(token) if dash.token.matches(token.trim()) => {
            redirect("status", Some(dash.token.cookie_value()))
        }
        _ => login_page(&dash, true),
    }
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match assets::get(&name) {
        Some((mime, body)) => (
            [
                (header::CONTENT_TYPE, mime),
                (header::CACHE_CONTROL, "max-age=3600"),
            ],
            body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such dashboard asset").into_response(),
    }
}

async fn poll(
    State(dash): State<Dash>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&dash, &headers) {
        return refused_json(&dash);
    }
    let since = query.get("since").and_then(|s| Cursor::parse(s));
    let Some(frames) = dash
        .actor
        .ask(|reply| Event::Dashboard { since, reply })
        .await
    else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the scheduler is stopping").into_response();
    };
    let body = format!(
        "[{}]",
        frames
            .iter()
            .map(|(_, json)| &**json)
            .collect::<Vec<_>>()
            .join(",")
    );
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn events(
    State(dash): State<Dash>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&dash, &headers) {
        return refused_json(&dash);
    }
    let since = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query.get("since").map(String::as_str))
        .and_then(Cursor::parse);
    let mut response = Sse::new(frames(dash.actor.clone(), since))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(8)))
        .into_response();
    // Proxies must not buffer the stream (nginx honours this header).
    if let Ok(v) = "no".parse() {
        response.headers_mut().insert("x-accel-buffering", v);
    }
    response
}

/// One SSE event per frame the viewer has not seen, every [`FRAME_EVERY`].
fn frames(actor: Actor, since: Option<Cursor>) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let ticks = tokio::time::interval(FRAME_EVERY);
    stream::unfold(
        (actor, since, ticks),
        |(actor, since, mut ticks)| async move {
            ticks.tick().await;
            let frames = actor.ask(|reply| Event::Dashboard { since, reply }).await?;
            let next = frames.last().map(|(c, _)| *c).or(since);
            let events: Vec<Result<SseEvent, Infallible>> = frames
                .into_iter()
                .map(|(cursor, json)| Ok(SseEvent::default().id(cursor.encode()).data(&*json)))
                .collect();
            Some((stream::iter(events), (actor, next, ticks)))
        },
    )
    .flatten()
}

async fn report(
    State(dash): State<Dash>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&dash, &headers) {
        return refused_json(&dash);
    }
    let since_unix_us = query
        .get("since_unix_us")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let title = query.get("title").cloned().unwrap_or_default();
    match dash
        .actor
        .ask(|reply| Event::TaskStream {
            since_unix_us,
            reply,
        })
        .await
    {
        Some(stream) => Html(super::report::render(&stream, &title)).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "the scheduler is stopping").into_response(),
    }
}
