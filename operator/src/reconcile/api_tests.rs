//! API-call tests of the reconciler: a fake API server (tower-test mock) answers from a
//! fixed world and records every call; each test asserts the exact calls a reconcile
//! makes, in order, and the bodies that matter. No real API server.

use super::{Context, reconcile};
use crate::crd::{ShoalCluster, ShoalWorkerGroup};
use crate::fixtures::{cluster, defaults, finished, worker_group};
use crate::metrics::Metrics;
use http::{Request, Response, StatusCode};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// One request the reconciler made.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    /// Path and query, e.g. `/api/v1/namespaces/ns/pods/x?fieldManager=...`.
    uri: String,
    body: Value,
}

impl Call {
    fn line(&self) -> String {
        format!(
            "{} {}",
            self.method,
            self.uri.split('?').next().unwrap_or_default()
        )
    }
}

/// What the fake API server holds.
#[derive(Default, Clone)]
struct World {
    groups: Vec<ShoalWorkerGroup>,
    pods: Vec<Pod>,
    token: Option<String>,
}

fn respond(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(body).unwrap_or_default()))
        .unwrap_or_else(|e| unreachable!("response builds: {e}"))
}

fn answer(world: &World, call: &Call) -> Response<Body> {
    let path = call.uri.split('?').next().unwrap_or_default();
    let list = |api_version: &str, kind: &str, items: Value| json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items});
    match (call.method.as_str(), path) {
        ("GET", p) if p.ends_with("/shoalworkergroups") => respond(
            StatusCode::OK,
            &list(
                "shoal.dev/v1alpha1",
                "ShoalWorkerGroupList",
                json!(world.groups),
            ),
        ),
        ("GET", p) if p.ends_with("/pods") => {
            respond(StatusCode::OK, &list("v1", "PodList", json!(world.pods)))
        }
        ("GET", p) if p.contains("/secrets/") => match &world.token {
            Some(token) => respond(
                StatusCode::OK,
                &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "demo-token"},
                        "data": {"token": ByteString(token.as_bytes().to_vec())}}),
            ),
            None => respond(
                StatusCode::NOT_FOUND,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
            ),
        },
        ("DELETE", _) => respond(
            StatusCode::OK,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        ),
        ("PATCH", p) if p.ends_with("/status") => {
            let mut object = json!({"apiVersion": "shoal.dev/v1alpha1", "kind": "ShoalCluster", "metadata": {"name": "demo"}, "spec": {}});
            object["status"] = call.body["status"].clone();
            respond(StatusCode::OK, &object)
        }
        ("PATCH" | "POST", _) => respond(StatusCode::OK, &call.body),
        _ => respond(
            StatusCode::NOT_IMPLEMENTED,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 501, "message": format!("unexpected call {}", call.line())}),
        ),
    }
}

/// Runs one reconcile of `cluster` against `world`; returns every call made, in order.
async fn reconcile_against(world: World, cluster: ShoalCluster) -> Vec<Call> {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        let mut calls = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let uri = request.uri().to_string();
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let call = Call { method, uri, body };
            send.send_response(answer(&world, &call));
            calls.push(call);
        }
        calls
    });
    let client = Client::new(service, "default");
    let ctx = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "shoal-operator".into(),
                instance: None,
            },
        ),
        client,
        metrics: Arc::new(Metrics::default()),
        defaults: defaults("0.3.0"),
    });
    let result = tokio::time::timeout(Duration::from_secs(5), reconcile(Arc::new(cluster), ctx))
        .await
        .unwrap_or_else(|_| unreachable!("reconcile timed out"));
    assert!(result.is_ok(), "reconcile failed: {result:?}");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap_or_else(|_| unreachable!("the fake API server did not finish"))
        .unwrap_or_default()
}

fn lines(calls: &[Call]) -> Vec<String> {
    calls.iter().map(Call::line).collect()
}

fn find<'a>(calls: &'a [Call], line: &str) -> &'a Call {
    calls
        .iter()
        .find(|c| c.line() == line)
        .unwrap_or_else(|| unreachable!("no call {line} in {:?}", lines(calls)))
}

const NS: &str = "/api/v1/namespaces/ns";

/// A new cluster: read, then token Secret, Service, scheduler and workers by server-side
/// apply (as the operator's field manager, forced), one Event, then the status.
#[tokio::test]
async fn new_cluster_makes_exactly_these_calls() {
    let calls = reconcile_against(World::default(), cluster("demo")).await;
    assert_eq!(
        lines(&calls),
        [
            "GET /apis/shoal.dev/v1alpha1/namespaces/ns/shoalworkergroups".to_owned(),
            format!("GET {NS}/pods"),
            format!("GET {NS}/secrets/demo-token"),
            format!("PATCH {NS}/secrets/demo-token"),
            format!("PATCH {NS}/services/demo-scheduler"),
            format!("PATCH {NS}/pods/demo-scheduler"),
            format!("PATCH {NS}/pods/demo-default-worker-0"),
            format!("PATCH {NS}/pods/demo-default-worker-1"),
            "POST /apis/events.k8s.io/v1/namespaces/ns/events".to_owned(),
            "PATCH /apis/shoal.dev/v1alpha1/namespaces/ns/shoalclusters/demo/status".to_owned(),
        ]
    );
    let pods = find(&calls, &format!("GET {NS}/pods"));
    assert!(
        pods.uri
            .contains("labelSelector=shoal.dev%2Fcluster%3Ddemo"),
        "{}",
        pods.uri
    );
    let worker = find(&calls, &format!("PATCH {NS}/pods/demo-default-worker-0"));
    assert!(
        worker.uri.contains("fieldManager=shoal-operator") && worker.uri.contains("force=true"),
        "{}",
        worker.uri
    );
    assert_eq!(
        worker.body["metadata"]["ownerReferences"][0]["uid"],
        "uid-demo"
    );
    let token = &find(&calls, &format!("PATCH {NS}/secrets/demo-token")).body["data"]["token"];
    assert_eq!(
        token.as_str().map(str::len),
        Some(88),
        "32 random bytes, hex, base64: {token}"
    );
    let status = &find(
        &calls,
        "PATCH /apis/shoal.dev/v1alpha1/namespaces/ns/shoalclusters/demo/status",
    )
    .body["status"];
    assert_eq!(status["phase"], "Pending");
    assert_eq!(status["desiredWorkers"], 2);
}

/// With every pod present and a worker OOM-killed: no creates; that worker is deleted
/// by name with its uid as a precondition, and a Warning Event names the cause.
#[tokio::test]
async fn oom_killed_worker_is_deleted_by_name_and_reported() {
    let validated = super::validate::validate(&cluster("demo"), &[], &defaults("0.3.0"))
        .unwrap_or_else(|e| unreachable!("{e}"));
    let mut pods = super::plan::plan(&validated, &[], None).create;
    for (i, pod) in pods.iter_mut().enumerate() {
        pod.metadata.uid = Some(format!("pod-uid-{i}"));
    }
    pods[2] = finished(pods[2].clone(), "OOMKilled", 137);
    let world = World {
        pods,
        token: Some("t".to_owned()),
        ..World::default()
    };
    let calls = reconcile_against(world, cluster("demo")).await;
    assert_eq!(
        lines(&calls),
        [
            "GET /apis/shoal.dev/v1alpha1/namespaces/ns/shoalworkergroups".to_owned(),
            format!("GET {NS}/pods"),
            format!("GET {NS}/secrets/demo-token"),
            format!("PATCH {NS}/services/demo-scheduler"),
            format!("DELETE {NS}/pods/demo-default-worker-1"),
            "POST /apis/events.k8s.io/v1/namespaces/ns/events".to_owned(),
            "PATCH /apis/shoal.dev/v1alpha1/namespaces/ns/shoalclusters/demo/status".to_owned(),
        ]
    );
    let delete = find(&calls, &format!("DELETE {NS}/pods/demo-default-worker-1"));
    assert_eq!(delete.body["preconditions"]["uid"], "pod-uid-2");
    let event = find(&calls, "POST /apis/events.k8s.io/v1/namespaces/ns/events");
    assert_eq!(event.body["reason"], "OomKilled");
    assert_eq!(event.body["type"], "Warning");
    assert!(
        event.body["note"]
            .as_str()
            .is_some_and(|n| n.contains("OOMKilled, exit code 137")),
        "{}",
        event.body
    );
}

/// An invalid spec creates nothing: one Warning Event and a Failed status saying why.
#[tokio::test]
async fn invalid_spec_only_reports() {
    let world = World {
        groups: vec![worker_group("default", "demo")],
        ..World::default()
    };
    let calls = reconcile_against(world, cluster("demo")).await;
    assert_eq!(
        lines(&calls),
        [
            "GET /apis/shoal.dev/v1alpha1/namespaces/ns/shoalworkergroups".to_owned(),
            format!("GET {NS}/pods"),
            format!("GET {NS}/secrets/demo-token"),
            "POST /apis/events.k8s.io/v1/namespaces/ns/events".to_owned(),
            "PATCH /apis/shoal.dev/v1alpha1/namespaces/ns/shoalclusters/demo/status".to_owned(),
        ]
    );
    let status = &find(
        &calls,
        "PATCH /apis/shoal.dev/v1alpha1/namespaces/ns/shoalclusters/demo/status",
    )
    .body["status"];
    assert_eq!(status["phase"], "Failed");
    let valid = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Valid"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(valid["status"], "False");
    assert!(
        valid["message"]
            .as_str()
            .is_some_and(|m| m.contains("rename it")),
        "{valid}"
    );
}
