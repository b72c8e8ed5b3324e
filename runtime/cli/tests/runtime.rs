//! Integration tests of the runtime: a real scheduler and real worker processes on
//! 127.0.0.1, driven through the real gRPC client.
#![allow(clippy::panic, reason = "tests report failures by panicking")]

mod common;

use std::time::Duration;

use common::*;
use shoal_proto::v1;
use shoal_proto::v1::builtin_task::Op;

/// A reduction tree with data moving between two worker processes gives the exact sum,
/// and releasing the result frees it on the workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_reduction_across_workers() {
    let cluster = TestCluster::start(2, &[]);
    let client = cluster.client().await;
    cluster.wait_for_workers(&client, 2).await;
    let mut tasks = Vec::new();
    for i in 0..1000 {
        tasks.push(sum(&format!("leaf-{i}"), i, vec![], false));
    }
    let mut level: Vec<u32> = (0..1000).collect();
    while level.len() > 1 {
        let mut next = Vec::new();
        for pair in level.chunks(2) {
            tasks.push(sum(
                &format!("node-{}", tasks.len()),
                0,
                pair.to_vec(),
                false,
            ));
            next.push(tasks.len() as u32 - 1);
        }
        level = next;
    }
    let root = tasks.last().expect("root").key.clone();
    tasks.last_mut().expect("root").wanted = true;
    let mut events = client.subscribe().await.expect("subscribe");
    client.submit(tasks).await.expect("graph accepted");
    wait_finished(&client, &mut events, &[&root]).await;
    let values = client.gather(vec![root.clone()]).await.expect("gather");
    assert_eq!(as_i64(&values[&root]), 999 * 1000 / 2);
    let info = client.cluster_info().await.expect("info");
    let counts = info.tasks.expect("counts");
    assert_eq!(counts.memory, 1, "only the wanted root keeps its data");
    client.release(vec![root]).await.expect("release");
    for _ in 0..200 {
        let info = client.cluster_info().await.expect("info");
        if info.workers.iter().all(|w| w.stored_bytes == 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("released data still held");
}

/// A worker killed with SIGKILL mid-graph: the graph completes with the right result, and
/// the scheduler logs the loss with the worker's name and its cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_graph_still_completes() {
    let mut cluster = TestCluster::start(2, &[]);
    let client = cluster.client().await;
    cluster.wait_for_workers(&client, 2).await;
    let n = 120u32;
    let mut tasks = Vec::new();
    for i in 0..n {
        tasks.push(task(&format!("sleep-{i}"), vec![], Op::SleepMs(25), false));
    }
    for i in 0..n {
        tasks.push(sum(&format!("value-{i}"), i64::from(i), vec![i], false));
    }
    tasks.push(sum("total", 0, (n..2 * n).collect(), true));
    let mut events = client.subscribe().await.expect("subscribe");
    client.submit(tasks).await.expect("graph accepted");
    for _ in 0..1000 {
        let done = client
            .cluster_info()
            .await
            .expect("info")
            .tasks
            .expect("counts")
            .finished_total;
        if done >= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cluster.kill_worker("w0");
    wait_finished(&client, &mut events, &["total"]).await;
    let values = client.gather(vec!["total".into()]).await.expect("gather");
    assert_eq!(as_i64(&values["total"]), i64::from(n * (n - 1) / 2));
    let log = cluster.scheduler_log();
    let lost = log
        .lines()
        .find(|l| l.contains("worker lost"))
        .unwrap_or_else(|| panic!("no loss logged:\n{log}"));
    assert!(lost.contains("w0"), "{lost}");
    assert!(lost.contains("connection broke"), "{lost}");
}

/// A wrong token is refused (client and worker) naming the expected and received token
/// fingerprints and how to fix it; the secret itself is never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_refused() {
    let cluster = TestCluster::start(0, &[]);
    let wrong = shoal_proto::auth::Token::new("not-the-token").expect("valid");
    let err = shoal_client::Client::connect(&cluster.address, &wrong, "t")
        .await
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(text.contains("wrong auth token"), "{text}");
    assert!(text.contains(&token().fingerprint()), "{text}");
    assert!(text.contains(&wrong.fingerprint()), "{text}");
    assert!(!text.contains(TOKEN), "{text}");

    let status = cluster
        .worker_command("intruder", "not-the-token")
        .status()
        .expect("worker runs");
    assert!(!status.success());
    let log = cluster.log("intruder");
    assert!(log.contains("wrong auth token"), "{log}");
}

/// A one-core worker named "early", started against `address` before any scheduler is there.
fn early_worker(address: &str) -> std::process::Child {
    std::process::Command::new(exe())
        .args([
            "worker",
            "--scheduler",
            address,
            "--name",
            "early",
            "--cores",
            "1",
        ])
        .env("SHOAL_TOKEN", TOKEN)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("worker starts")
}

/// A worker started before its scheduler keeps trying while the address accepts and drops
/// connections (a Service in front of a scheduler pod still starting), then joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_waits_for_a_scheduler_that_drops_connections() {
    let flaky = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = flaky.local_addr().expect("address").to_string();
    let mut worker = early_worker(&address);
    flaky.set_nonblocking(true).expect("nonblocking");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut dropped = 0;
    while dropped < 3 {
        if let Some(status) = worker.try_wait().expect("worker state") {
            panic!("the worker gave up on a scheduler that was still starting: {status}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not retry within 30 s"
        );
        match flaky.accept() {
            Ok((connection, _)) => {
                drop(connection);
                dropped += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    drop(flaky);
    let mut cluster = TestCluster::start_at(&address, 0, &[]);
    cluster.workers.push(("early".into(), worker));
    let client = cluster.client().await;
    cluster.wait_for_workers(&client, 1).await;
}

/// A worker whose scheduler address first answers HTTP 404 with no gRPC status (a Service
/// still routing to an old endpoint) keeps trying, then joins the scheduler started there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_waits_past_an_answer_that_is_not_grpc() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let mut worker = early_worker(&address);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut answered = 0;
    while answered < 3 {
        if let Some(status) = worker.try_wait().expect("worker state") {
            panic!("the worker gave up after an answer that was not gRPC: {status}");
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let (socket, _) = tokio::time::timeout(left, listener.accept())
            .await
            .expect("the worker did not retry within 30 s")
            .expect("accept");
        let Ok(mut connection) = h2::server::handshake(socket).await else {
            continue;
        };
        if let Some(Ok((_, mut respond))) = connection.accept().await {
            let not_found = http::Response::builder()
                .status(404)
                .body(())
                .expect("response");
            if respond.send_response(not_found, true).is_ok() {
                answered += 1;
            }
        }
        // Drive the connection until the worker drops it (or a second passes).
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            std::future::poll_fn(|cx| connection.poll_closed(cx)),
        )
        .await;
    }
    drop(listener);
    if let Some(status) = worker.try_wait().expect("worker state") {
        panic!("the worker gave up after an answer that was not gRPC: {status}");
    }
    let mut cluster = TestCluster::start_at(&address, 0, &[]);
    cluster.workers.push(("early".into(), worker));
    let client = cluster.client().await;
    cluster.wait_for_workers(&client, 1).await;
}

/// Clients and workers of another version are refused with both versions and the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_versions_refused() {
    let cluster = TestCluster::start(0, &[]);
    let old = v1::VersionInfo {
        protocol_version: shoal_proto::PROTOCOL_VERSION + 1,
        runtime_version: "0.0.1".into(),
    };
    let err = shoal_client::Client::connect_as(&cluster.address, &token(), "old", old.clone())
        .await
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("0.0.1") && text.contains(shoal_proto::RUNTIME_VERSION),
        "{text}"
    );
    assert!(text.contains("pip install shoal=="), "{text}");

    let channel = shoal_client::channel(&cluster.address)
        .await
        .expect("channel");
    let mut session = v1::worker_session_client::WorkerSessionClient::with_interceptor(
        channel,
        shoal_proto::auth::AttachToken::new(&token()),
    );
    let register = v1::WorkerMessage {
        msg: Some(v1::worker_message::Msg::Register(v1::Register {
            version: Some(old),
            name: "old-worker".into(),
            cores: 1,
            memory_limit: 1 << 30,
            data_address: "127.0.0.1:1".into(),
            ..Default::default()
        })),
    };
    let status = session
        .session(tokio_stream::iter(vec![register]))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(status.message().contains("0.0.1"), "{}", status.message());
    assert!(status.message().contains("image"), "{}", status.message());
}

/// Malformed graphs are refused whole, naming the offending keys, and the scheduler keeps
/// serving: a valid graph runs afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_graphs_refused() {
    let cluster = TestCluster::start(1, &["--max-chunk-bytes", "4096"]);
    let client = cluster.client().await;
    cluster.wait_for_workers(&client, 1).await;
    let refused = |r: Result<v1::SubmitGraphResult, shoal_client::ClientError>| {
        r.expect_err("refused").to_string()
    };
    let cycle = refused(
        client
            .submit(vec![
                sum("a", 0, vec![2], true),
                sum("b", 0, vec![0], false),
                sum("c", 0, vec![1], false),
            ])
            .await,
    );
    assert!(
        cycle.contains("cycle") && cycle.contains("\"a\"") && cycle.contains("\"c\""),
        "{cycle}"
    );
    let mut unknown = sum("x", 0, vec![], true);
    unknown.existing_deps = vec!["ghost".into()];
    let text = refused(client.submit(vec![unknown]).await);
    assert!(
        text.contains("\"ghost\"") && text.contains("\"x\""),
        "{text}"
    );
    let text = refused(
        client
            .submit(vec![sum("d", 0, vec![], true), sum("d", 1, vec![], true)])
            .await,
    );
    assert!(
        text.contains("duplicate") && text.contains("\"d\""),
        "{text}"
    );
    let mut empty = sum("e", 0, vec![], true);
    empty.payload = None;
    let text = refused(client.submit(vec![empty]).await);
    assert!(
        text.contains("without a payload") && text.contains("\"e\""),
        "{text}"
    );
    let big: Vec<v1::TaskSpec> = (0..500)
        .map(|i| sum(&format!("big-{i}"), 0, vec![], true))
        .collect();
    let text = refused(
        client
            .submit_chunks(vec![v1::GraphChunk {
                session_id: client.session_id,
                tasks: big,
                blobs: vec![],
            }])
            .await,
    );
    assert!(
        text.contains("over the limit") && text.contains("\"big-0\""),
        "{text}"
    );
    let text = refused(client.submit(vec![sum("f", 0, vec![7], true)]).await);
    assert!(
        text.contains("\"f\"") && text.contains("ordinal 7"),
        "{text}"
    );

    let mut events = client.subscribe().await.expect("subscribe");
    client
        .submit(vec![sum("ok", 42, vec![], true)])
        .await
        .expect("valid graph accepted");
    wait_finished(&client, &mut events, &["ok"]).await;
    let values = client.gather(vec!["ok".into()]).await.expect("gather");
    assert_eq!(as_i64(&values["ok"]), 42);
}

/// A failing task reaches the client with its kind, its key and its worker; its
/// dependents fail with the same cause, naming the task that failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_failure_names_task_and_worker() {
    let cluster = TestCluster::start(1, &[]);
    let client = cluster.client().await;
    cluster.wait_for_workers(&client, 1).await;
    let mut events = client.subscribe().await.expect("subscribe");
    client
        .submit(vec![
            task("broken", vec![], Op::Fail("division by zero".into()), true),
            sum("after", 1, vec![0], true),
        ])
        .await
        .expect("accepted");
    let mut failures = std::collections::HashMap::new();
    while failures.len() < 2 {
        let batch = events.message().await.expect("events").expect("open");
        for f in batch.failed {
            failures.insert(f.key.clone(), f.error.expect("error"));
        }
    }
    let broken = &failures["broken"];
    assert_eq!(broken.kind, "TaskFailed");
    assert!(broken.message.contains("\"broken\"") && broken.message.contains("division by zero"));
    assert_eq!(broken.worker, "w0");
    let after = &failures["after"];
    assert!(
        after.message.contains("dependency \"broken\" failed"),
        "{}",
        after.message
    );
    let err = client
        .gather(vec!["broken".into()])
        .await
        .expect_err("no result");
    assert!(err.to_string().contains("division by zero"), "{err}");
}

/// Retiring a worker through the control API moves its results first: they stay
/// gatherable after the worker process exits on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retire_moves_results_before_shutdown() {
    let mut cluster = TestCluster::start(2, &[]);
    let client = cluster.client().await;
    cluster.wait_for_workers(&client, 2).await;
    let keys: Vec<String> = (0..50).map(|i| format!("r{i}")).collect();
    let tasks = keys
        .iter()
        .enumerate()
        .map(|(i, k)| sum(k, i as i64, vec![], true))
        .collect();
    let mut events = client.subscribe().await.expect("subscribe");
    client.submit(tasks).await.expect("accepted");
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    wait_finished(&client, &mut events, &refs).await;
    let before = client.cluster_info().await.expect("info");
    let finished_before = before.tasks.expect("counts").finished_total;

    let channel = shoal_client::channel(&cluster.address)
        .await
        .expect("channel");
    let mut control = v1::control_client::ControlClient::with_interceptor(
        channel,
        shoal_proto::auth::AttachToken::new(&token()),
    );
    let result = control
        .retire_workers(v1::RetireWorkersParams {
            names: vec!["w0".into()],
            deadline_seconds: 0.0,
        })
        .await
        .expect("retire")
        .into_inner();
    assert_eq!(
        result.retired,
        vec!["w0".to_string()],
        "{:?}",
        result.refused
    );
    let (_, w0) = cluster
        .workers
        .iter_mut()
        .find(|(n, _)| n == "w0")
        .expect("w0");
    let status = w0.wait().expect("w0 exits");
    assert!(status.success(), "retired worker exits cleanly");
    let values = client
        .gather(keys.clone())
        .await
        .expect("gather after retire");
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(as_i64(&values[k]), i as i64);
    }
    let after = client.cluster_info().await.expect("info");
    assert_eq!(after.workers.len(), 1);
    assert_eq!(
        after.tasks.expect("counts").finished_total,
        finished_before,
        "nothing recomputed"
    );
}

/// Health and metrics answer without a token; metrics carry task and worker figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_unauthenticated() {
    let cluster = TestCluster::start(1, &[]);
    let client = cluster.client().await;
    cluster.wait_for_workers(&client, 1).await;
    assert!(cluster.http_get("/healthz").contains("ok"));
    assert!(cluster.http_get("/readyz").contains("200 OK"));
    let metrics = cluster.http_get("/metrics");
    assert!(metrics.contains("shoal_scheduler_workers 1"), "{metrics}");
    assert!(
        metrics.contains("shoal_scheduler_tasks{state=\"ready\"}"),
        "{metrics}"
    );
}

/// A worker's metrics endpoint answers without a token with its task and memory figures,
/// and reports ready once the scheduler has accepted it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_metrics_unauthenticated() {
    let mut cluster = TestCluster::start(0, &[]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let address = format!("127.0.0.1:{port}");
    let child = cluster
        .worker_command("metered", TOKEN)
        .args(["--metrics-listen", &address])
        .spawn()
        .expect("worker starts");
    cluster.workers.push(("metered".into(), child));
    let client = cluster.client().await;
    cluster.wait_for_workers(&client, 1).await;
    let mut events = client.subscribe().await.expect("subscribe");
    client
        .submit(vec![sum("m", 1, vec![], true)])
        .await
        .expect("accepted");
    wait_finished(&client, &mut events, &["m"]).await;
    let body = cluster.http_get_at(&address, "/metrics");
    assert!(
        body.contains("shoal_worker_tasks_finished_total 1"),
        "{body}"
    );
    assert!(body.contains("shoal_worker_memory_bytes"), "{body}");
    assert!(cluster.http_get_at(&address, "/readyz").contains("200 OK"));
}

/// A worker that stops answering (SIGSTOP: hung, paused, partitioned) is declared lost
/// after the heartbeat timeout, named with the cause, and its work runs elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_worker_is_declared_lost() {
    let cluster = TestCluster::start(2, &["--heartbeat-timeout", "1"]);
    let client = cluster.client().await;
    cluster.wait_for_workers(&client, 2).await;
    let mut events = client.subscribe().await.expect("subscribe");
    let tasks = (0..20)
        .map(|i| task(&format!("nap-{i}"), vec![], Op::SleepMs(50), true))
        .collect();
    client.submit(tasks).await.expect("accepted");
    let pid = cluster.worker_pid("w0");
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .expect("kill -STOP");
    assert!(stopped.success());
    let keys: Vec<String> = (0..20).map(|i| format!("nap-{i}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    wait_finished(&client, &mut events, &refs).await;
    let info = client.cluster_info().await.expect("info");
    assert_eq!(info.workers.len(), 1, "the silent worker was removed");
    let log = cluster.scheduler_log();
    let lost = log
        .lines()
        .find(|l| l.contains("worker lost"))
        .unwrap_or_else(|| panic!("no loss logged:\n{log}"));
    assert!(
        lost.contains("w0") && lost.contains("sent nothing for 1s"),
        "{lost}"
    );
    // The healthy worker, now idle, keeps its place: its heartbeats come often enough.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let info = client.cluster_info().await.expect("info");
    assert_eq!(info.workers.len(), 1, "{}", cluster.scheduler_log());
    assert_eq!(info.workers[0].name, "w1");
}
