//! Integration tests of elastic clusters: the Dask-compatible autoscaling HTTP API (token
//! checked), the estimate in the cluster status, and resource requests, with a real
//! scheduler and worker processes on 127.0.0.1.
#![allow(clippy::panic, reason = "tests report failures by panicking")]

mod common;

use std::time::Duration;

use common::*;
use shoal_proto::v1;

/// Polls the cluster status until `check` holds, failing loudly after 20 s.
async fn wait_status(
    cluster: &TestCluster,
    client: &shoal_client::Client,
    what: &str,
    check: impl Fn(&v1::ClusterStatus) -> bool,
) -> v1::ClusterStatus {
    for _ in 0..800 {
        let info = client.cluster_info().await.expect("info");
        if check(&info) {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{what} never happened; scheduler log:\n{}",
        cluster.scheduler_log()
    );
}

/// The autoscaling API answers with the token and refuses without it (401, JSON error
/// saying how to pass it); retire_workers retires by name and refuses bad bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_http_api_needs_token() {
    let cluster = TestCluster::start(2, &[]);
    let client = cluster.client().await;
    cluster.wait_for_workers(&client, 2).await;

    let (code, body) = cluster.http_request("GET", "/api/v1/adaptive_target", Some(TOKEN), "");
    assert_eq!(code, 200, "{body}");
    let value: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert!(value["workers"].is_u64(), "{body}");

    let (code, body) = cluster.http_request("GET", "/api/v1/adaptive_target", None, "");
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("Authorization: Bearer <token>"), "{body}");
    let (code, _) = cluster.http_request("GET", "/api/v1/adaptive_target", Some("wrong"), "");
    assert_eq!(code, 401);
    let (code, _) = cluster.http_request("POST", "/api/v1/retire_workers", None, "{}");
    assert_eq!(code, 401);

    let (code, body) = cluster.http_request(
        "POST",
        "/api/v1/retire_workers",
        Some(TOKEN),
        "{\"oops\": 1}",
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    let (code, body) = cluster.http_request(
        "POST",
        "/api/v1/retire_workers",
        Some(TOKEN),
        "{\"workers\": [\"nobody\"]}",
    );
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("nobody"), "{body}");

    let (code, body) = cluster.http_request(
        "POST",
        "/api/v1/retire_workers",
        Some(TOKEN),
        "{\"workers\": [\"w0\"]}",
    );
    assert_eq!(code, 200, "{body}");
    let value: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(value["w0"]["name"], "w0", "{body}");
    wait_status(&cluster, &client, "w0 leaving", |s| s.workers.len() == 1).await;
    // Health and metrics stay open.
    assert!(
        cluster
            .http_get("/metrics")
            .contains("shoal_scheduler_workers")
    );
}

/// Workers register their group and resources; the status carries the estimate per group
/// with its reason; a task asking for a resource nobody offers is refused naming the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_resources_and_estimate() {
    let mut cluster = TestCluster::start(1, &[]);
    let child = cluster
        .worker_command("big", TOKEN)
        .args(["--group", "highmem", "--resources", "highmem=1"])
        .spawn()
        .expect("worker starts");
    cluster.workers.push(("big".into(), child));
    let client = cluster.client().await;
    cluster.wait_for_workers(&client, 2).await;
    let info = client.cluster_info().await.expect("info");
    let big = info.workers.iter().find(|w| w.name == "big").expect("big");
    assert_eq!(big.group, "highmem");
    assert_eq!(big.resources.get("highmem"), Some(&1.0));
    let adaptive = info.adaptive.expect("estimate");
    let names: Vec<&str> = adaptive.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["default", "highmem"]);
    assert!(adaptive.groups.iter().all(|g| !g.reason.is_empty()));
    assert_eq!(adaptive.clients, 1);
    assert_eq!(
        adaptive.idle_seconds, 0.0,
        "a connected client keeps it busy"
    );

    let mut events = client.subscribe().await.expect("subscribe");
    let mut wants = sum("needs-highmem", 1, vec![], true);
    wants.resources.push(v1::ResourceAmount {
        name: "highmem".into(),
        amount: 1.0,
    });
    client.submit(vec![wants]).await.expect("accepted");
    wait_finished(&client, &mut events, &["needs-highmem"]).await;

    let mut gpu = sum("train-1", 1, vec![], true);
    gpu.resources.push(v1::ResourceAmount {
        name: "gpu".into(),
        amount: 1.0,
    });
    let err = client
        .submit(vec![gpu])
        .await
        .expect_err("refused")
        .to_string();
    for part in [
        "\"train-1\"",
        "gpu=1",
        "\"big\"",
        "highmem=1",
        "ShoalWorkerGroup",
    ] {
        assert!(err.contains(part), "{part} missing from: {err}");
    }
}

fn control(
    cluster: &TestCluster,
) -> v1::control_client::ControlClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        shoal_proto::auth::AttachToken,
    >,
> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.address))
        .expect("endpoint")
        .connect_lazy();
    v1::control_client::ControlClient::with_interceptor(
        channel,
        shoal_proto::auth::AttachToken::new(&token()),
    )
}

/// GetAdaptiveTarget answers per operator group; the groups it names decide which resource
/// requests are accepted (queued even with no such worker yet); idle time counts only with
/// no unfinished task and no connected client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_target_over_grpc() {
    let cluster = TestCluster::start(1, &[]);
    let mut control = control(&cluster);
    let params = v1::AdaptiveParams {
        groups: vec![
            v1::WorkerGroupSpec {
                name: "default".into(),
                cores: 1,
                memory_limit: 1 << 30,
                resources: Default::default(),
            },
            v1::WorkerGroupSpec {
                name: "gpu".into(),
                cores: 4,
                memory_limit: 1 << 30,
                resources: [("gpu".to_string(), 1.0)].into_iter().collect(),
            },
        ],
        target_duration_seconds: 5.0,
    };
    // With no client connected and nothing to run, the cluster becomes idle.
    let mut idle = 0.0;
    for _ in 0..800 {
        let target = control
            .get_adaptive_target(params.clone())
            .await
            .expect("target")
            .into_inner();
        if target
            .groups
            .iter()
            .any(|g| g.name == "default" && g.workers == 1)
        {
            idle = target.idle_seconds;
            if idle > 0.0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(idle > 0.0, "never idle; log:\n{}", cluster.scheduler_log());

    let client = cluster.client().await;
    cluster.wait_for_workers(&client, 1).await;
    let mut gpu_task = sum("train-1", 1, vec![], true);
    gpu_task.resources.push(v1::ResourceAmount {
        name: "gpu".into(),
        amount: 1.0,
    });
    client
        .submit(vec![gpu_task])
        .await
        .expect("the operator runs a gpu group: queued until a gpu worker joins");
    let target = control
        .get_adaptive_target(params)
        .await
        .expect("target")
        .into_inner();
    assert_eq!(target.idle_seconds, 0.0);
    assert_eq!(target.clients, 1);
    assert_eq!(target.unfinished_tasks, 1);
    let gpu = target
        .groups
        .iter()
        .find(|g| g.name == "gpu")
        .expect("gpu group");
    assert_eq!(gpu.desired_workers, 1, "{}", gpu.reason);
    assert!(gpu.reason.contains("(train"), "{}", gpu.reason);
    assert_eq!(gpu.workers, 0);
    let default = target
        .groups
        .iter()
        .find(|g| g.name == "default")
        .expect("default");
    assert_eq!(default.retire_order, ["w0"]);
}
