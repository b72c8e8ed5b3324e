//! The dashboard over real HTTP on a real scheduler: who may see it, how a token link
//! logs a browser in, and what the stream and the polling fallback carry.
#![allow(clippy::panic, reason = "tests report failures by panicking")]

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;

/// One raw HTTP/1.1 request with extra header lines; reads until the connection closes
/// or `until` appears in what was read (for streams), within 10 s.
fn request(address: &str, head: &str, body: &str, until: Option<&str>) -> String {
    let mut stream = std::net::TcpStream::connect(address).expect("http connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    write!(
        stream,
        "{head}\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}"),
        }
        let text = String::from_utf8_lossy(&got);
        if until.is_some_and(|u| text.contains(u)) {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.split("\r\n\r\n").next()?.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Without the token the page (with its login form), the stream, the polling API and the
/// report answer 401; health and metrics still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_needs_the_token_health_and_metrics_do_not() {
    let cluster = TestCluster::start(0, &[]);
    let page = request(&cluster.http, "GET /status HTTP/1.1", "", None);
    assert_eq!(status(&page), 401, "{page}");
    assert!(
        page.contains("<form method=\"post\" action=\"login\""),
        "{page}"
    );
    for path in [
        "/api/v1/dashboard",
        "/api/v1/dashboard/events",
        "/api/v1/performance_report",
    ] {
        let r = request(&cluster.http, &format!("GET {path} HTTP/1.1"), "", None);
        assert_eq!(status(&r), 401, "{path}: {r}");
        assert!(r.contains("auth token"), "{path}: {r}");
    }
    let wrong = request(
        &cluster.http,
        "GET /api/v1/dashboard HTTP/1.1\r\nAuthorization: Bearer nope\r\nCookie: shoal_dashboard=nope",
        "",
        None,
    );
    assert_eq!(status(&wrong), 401, "{wrong}");
    let wrong_link = request(&cluster.http, "GET /status?token=nope HTTP/1.1", "", None);
    assert_eq!(status(&wrong_link), 401);
    assert!(wrong_link.contains("not this cluster"), "{wrong_link}");
    assert!(cluster.http_get("/healthz").contains("ok"));
    assert!(
        cluster
            .http_get("/metrics")
            .contains("shoal_scheduler_workers")
    );
    assert!(
        cluster
            .http_get("/metrics")
            .contains("shoal_scheduler_dashboard_seconds_total")
    );
}

/// A `?token=` link and the login form set an HttpOnly cookie (a digest, not the token)
/// and redirect relatively; the cookie opens the page and the event stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_link_or_the_login_form_sets_a_cookie_that_opens_page_and_stream() {
    let cluster = TestCluster::start(0, &[]);
    let link = request(
        &cluster.http,
        &format!("GET /status?token={TOKEN} HTTP/1.1"),
        "",
        None,
    );
    assert_eq!(status(&link), 303, "{link}");
    assert_eq!(header(&link, "location"), Some("status"));
    let cookie = header(&link, "set-cookie").expect("a cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(
        !cookie.contains(TOKEN),
        "the cookie must not be the token: {cookie}"
    );
    let pair = cookie.split(';').next().expect("name=value");

    let form = request(
        &cluster.http,
        "POST /login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        &format!("token={TOKEN}"),
        None,
    );
    assert_eq!(status(&form), 303, "{form}");
    assert_eq!(
        header(&form, "set-cookie").and_then(|c| c.split(';').next()),
        Some(pair)
    );

    let page = request(
        &cluster.http,
        &format!("GET /status HTTP/1.1\r\nCookie: other=1; {pair}"),
        "",
        None,
    );
    assert_eq!(status(&page), 200, "{page}");
    assert!(
        page.contains("src=\"dashboard/app.js\""),
        "relative asset URLs: {page}"
    );
    let asset = request(
        &cluster.http,
        "GET /dashboard/uPlot.iife.min.js HTTP/1.1",
        "",
        None,
    );
    assert_eq!(status(&asset), 200);

    let events = request(
        &cluster.http,
        &format!("GET /api/v1/dashboard/events HTTP/1.1\r\nCookie: {pair}"),
        "",
        Some("\n\n"),
    );
    assert_eq!(status(&events), 200, "{events}");
    assert_eq!(header(&events, "content-type"), Some("text/event-stream"));
    assert!(events.contains("\"full\":true"), "{events}");
    assert!(events.contains("\nid: "), "{events}");
}

/// The polling API gives one snapshot to a new viewer, then deltas after its cursor; the
/// progress of a graph's prefix reaches its task count, and a viewer resuming from the
/// cursor gets no snapshot again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_gives_a_snapshot_then_deltas_with_the_progress() {
    let cluster = TestCluster::start(1, &[]);
    let client = cluster.client().await;
    cluster.wait_for_workers(&client, 1).await;
    let poll = |since: &str| {
        let r = request(
            &cluster.http,
            &format!(
                "GET /api/v1/dashboard?since={since} HTTP/1.1\r\nAuthorization: Bearer {TOKEN}"
            ),
            "",
            None,
        );
        assert_eq!(status(&r), 200, "{r}");
        let body = r.split_once("\r\n\r\n").expect("body").1;
        serde_json::from_str::<Vec<serde_json::Value>>(body).expect("a JSON array")
    };
    let first = poll("");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["full"], true);
    let mut cursor = first[0]["cursor"].as_str().expect("cursor").to_owned();

    let tasks: Vec<_> = (0..200)
        .map(|i| sum(&format!("leaf-{i}"), i, vec![], true))
        .collect();
    let keys: Vec<String> = tasks.iter().map(|t| t.key.clone()).collect();
    let mut events = client.subscribe().await.expect("subscribe");
    client.submit(tasks).await.expect("graph accepted");
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    wait_finished(&client, &mut events, &refs).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let deltas = poll(&cursor);
        assert!(
            deltas.iter().all(|d| d["full"] == false),
            "a viewer with a current cursor gets deltas, not a snapshot"
        );
        let done = deltas
            .iter()
            .flat_map(|d| d["prefixes"].as_array().cloned().unwrap_or_default())
            .filter(|p| p["name"] == "leaf")
            .filter_map(|p| p["done"].as_u64())
            .next_back();
        if let Some(last) = deltas.last() {
            cursor = last["cursor"].as_str().expect("cursor").to_owned();
            assert!(last["bars"].as_array().is_some());
        }
        if done == Some(200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leaf prefix never showed 200 done"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let stale = poll("0-0");
    assert_eq!(stale.len(), 1, "another instance's cursor gets a snapshot");
    assert_eq!(stale[0]["full"], true);
}
