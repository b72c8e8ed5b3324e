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
    /// Applying the scheduler Service fails as when the Service IP range is full.
    service_range_full: bool,
    /// The client Lease `demo-client`, when it exists.
    lease: Option<Value>,
    /// The NetworkPolicy `demo-scheduler`, when it exists.
    policy: Option<Value>,
    /// The operator runs with `--network-policy=false`.
    network_off: bool,
}

fn not_found() -> Response<Body> {
    respond(
        StatusCode::NOT_FOUND,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    )
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
        ("GET", p) if p.contains("/leases/") => world
            .lease
            .as_ref()
            .map_or_else(not_found, |l| respond(StatusCode::OK, l)),
        ("GET", p) if p.contains("/networkpolicies/") => world
            .policy
            .as_ref()
            .map_or_else(not_found, |l| respond(StatusCode::OK, l)),
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
        ("PATCH", p) if world.service_range_full && p.contains("/services/") => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500,
                    "message": "Internal error occurred: failed to allocate a serviceIP: range is full"}),
        ),
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
    let (result, calls) = reconcile_result(world, cluster).await;
    assert!(result.is_ok(), "reconcile failed: {result:?}");
    calls
}

/// Runs one reconcile; returns its result and every call made, in order.
async fn reconcile_result(
    world: World,
    cluster: ShoalCluster,
) -> (
    Result<kube::runtime::controller::Action, super::Error>,
    Vec<Call>,
) {
    let network_off = world.network_off;
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
    let reporter = Reporter {
        controller: "shoal-operator".into(),
        instance: None,
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter.clone()),
        reporter,
        client,
        metrics: Arc::new(Metrics::default()),
        defaults: defaults("0.3.0"),
        reported: std::sync::Mutex::default(),
        network: if network_off {
            super::network::Settings::Disabled
        } else {
            super::network::Settings::Enabled(super::network::OperatorPeer {
                namespace: "shoal-system".to_owned(),
                labels: [(
                    "app.kubernetes.io/name".to_owned(),
                    "shoal-operator".to_owned(),
                )]
                .into(),
            })
        },
    });
    let result = tokio::time::timeout(Duration::from_secs(5), reconcile(Arc::new(cluster), ctx))
        .await
        .unwrap_or_else(|_| unreachable!("reconcile timed out"));
    let calls = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap_or_else(|_| unreachable!("the fake API server did not finish"))
        .unwrap_or_default();
    (result, calls)
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
const POLICIES: &str = "/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies";
const CLUSTERS: &str = "/apis/shoal.dev/v1alpha1/namespaces/ns/shoalclusters";

/// The status the reconcile wrote to the `demo` cluster.
fn written_status(calls: &[Call]) -> &serde_json::Value {
    &find(
        calls,
        "PATCH /apis/shoal.dev/v1alpha1/namespaces/ns/shoalclusters/demo/status",
    )
    .body["status"]
}

/// One condition of a written status (`Null` when absent).
fn condition(status: &serde_json::Value, type_: &str) -> serde_json::Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or_default()
}

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
            format!("PATCH {POLICIES}/demo-scheduler"),
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
    let status = written_status(&calls);
    assert_eq!(status["phase"], "Pending");
    assert_eq!(status["desiredWorkers"], 2);
}

/// Every pod of `cluster` as the operator creates it, each with a uid `pod-uid-<i>`
/// (0 is the scheduler).
fn pods_of(cluster: &ShoalCluster) -> Vec<Pod> {
    let validated = super::validate::validate(cluster, &[], &defaults("0.3.0"))
        .unwrap_or_else(|e| unreachable!("{e}"));
    let mut pods = super::plan::plan(&validated, &[], None).create;
    for (i, pod) in pods.iter_mut().enumerate() {
        pod.metadata.uid = Some(format!("pod-uid-{i}"));
    }
    pods
}

/// The Events a reconcile posted, by reason.
fn event_reasons(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.line() == "POST /apis/events.k8s.io/v1/namespaces/ns/events")
        .map(|c| c.body["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn event<'a>(calls: &'a [Call], reason: &str) -> &'a Call {
    calls
        .iter()
        .find(|c| c.body["reason"] == reason)
        .unwrap_or_else(|| unreachable!("no {reason} Event in {:?}", event_reasons(calls)))
}

/// The cluster as it reads after `calls` wrote its status.
fn with_written_status(mut cluster: ShoalCluster, calls: &[Call]) -> ShoalCluster {
    cluster.status = serde_json::from_value(written_status(calls).clone())
        .unwrap_or_else(|e| unreachable!("the written status reads back: {e}"));
    cluster
}

/// With every pod present and a worker OOM-killed: that worker is deleted by name with
/// its uid as a precondition, a replacement starts at the lowest free index, one
/// WorkerOOMKilled Warning names the pod, its container's end, limit and the advice, and
/// the status counts the kill with a True WorkersOOMKilled condition. The next
/// reconcile, with that status, posts no second Event for the same pod.
#[tokio::test]
async fn oom_killed_worker_is_deleted_by_name_and_reported_once() {
    let mut demo = cluster("demo");
    demo.spec.workers.resources = Some(crate::fixtures::memory("256Mi", None));
    let mut pods = pods_of(&demo);
    pods[2] = finished(pods[2].clone(), "OOMKilled", 137);
    let world = World {
        pods,
        token: Some("t".to_owned()),
        ..World::default()
    };
    let calls = reconcile_against(world.clone(), demo.clone()).await;
    assert_eq!(
        lines(&calls),
        [
            "GET /apis/shoal.dev/v1alpha1/namespaces/ns/shoalworkergroups".to_owned(),
            format!("GET {NS}/pods"),
            format!("GET {NS}/secrets/demo-token"),
            format!("PATCH {NS}/services/demo-scheduler"),
            format!("PATCH {POLICIES}/demo-scheduler"),
            format!("DELETE {NS}/pods/demo-default-worker-1"),
            format!("PATCH {NS}/pods/demo-default-worker-2"),
            "POST /apis/events.k8s.io/v1/namespaces/ns/events".to_owned(),
            "POST /apis/events.k8s.io/v1/namespaces/ns/events".to_owned(),
            "PATCH /apis/shoal.dev/v1alpha1/namespaces/ns/shoalclusters/demo/status".to_owned(),
        ]
    );
    let delete = find(&calls, &format!("DELETE {NS}/pods/demo-default-worker-1"));
    assert_eq!(delete.body["preconditions"]["uid"], "pod-uid-2");
    assert_eq!(event_reasons(&calls), ["WorkerOOMKilled", "Created"]);
    let oom = event(&calls, "WorkerOOMKilled");
    assert_eq!(oom.body["type"], "Warning");
    let note = oom.body["note"].as_str().unwrap_or_default();
    for needle in [
        "worker pod demo-default-worker-1 (group default) was OOM-killed",
        "OOMKilled, exit code 137, memory limit 256Mi",
        "tasks unknown: scheduler unreachable (its pod is not ready)",
        "raise spec.workers.resources.limits.memory or set spec.workers.oomPolicy",
    ] {
        assert!(note.contains(needle), "{needle:?} not in {note}");
    }
    let status = written_status(&calls);
    let kills = &status["workerGroups"][0]["oomKills"];
    assert_eq!(kills["total"], 1);
    assert_eq!(kills["recent"][0]["pod"], "demo-default-worker-1");
    assert_eq!(kills["recent"][0]["podUID"], "pod-uid-2");
    assert_eq!(kills["recent"][0]["memoryLimit"], "256Mi");
    let condition = condition(status, "WorkersOOMKilled");
    assert_eq!(condition["status"], "True");
    assert!(
        condition["message"]
            .as_str()
            .is_some_and(|m| m.contains("1 worker pod OOM-killed")
                && m.contains("demo-default-worker-1 at memory limit 256Mi")),
        "{condition}"
    );

    let again = reconcile_against(world, with_written_status(demo, &calls)).await;
    assert_eq!(event_reasons(&again), ["Created"]);
}

/// With oomPolicy, the replacement of a worker OOM-killed at 256Mi starts with 384Mi
/// (factor 1.5), the raised limit is in status and a MemoryLimitRaised Event says from
/// what to what and why; the worker that still runs is not touched.
#[tokio::test]
async fn oom_policy_raises_the_replacement_limit() {
    let mut demo = cluster("demo");
    demo.spec.workers.resources = Some(crate::fixtures::memory("256Mi", Some("256Mi")));
    demo.spec.workers.oom_policy = Some(crate::crd::OomPolicy {
        increase_factor: 1.5,
        max_memory: "1Gi".to_owned(),
    });
    let mut pods = pods_of(&demo);
    pods[1] = crate::fixtures::ready(pods[1].clone(), "sha256:x");
    pods[2] = finished(pods[2].clone(), "OOMKilled", 137);
    let world = World {
        pods,
        token: Some("t".to_owned()),
        ..World::default()
    };
    let calls = reconcile_against(world, demo).await;
    assert_eq!(
        event_reasons(&calls),
        ["WorkerOOMKilled", "MemoryLimitRaised", "Created"]
    );
    assert!(
        !calls.iter().any(
            |c| c.line() == format!("DELETE {NS}/pods/demo-default-worker-0")
                || c.line() == format!("PATCH {NS}/pods/demo-default-worker-0")
        ),
        "{:?}",
        lines(&calls)
    );
    let replacement = find(&calls, &format!("PATCH {NS}/pods/demo-default-worker-2"));
    let resources = &replacement.body["spec"]["containers"][0]["resources"];
    assert_eq!(resources["limits"]["memory"], "384Mi");
    assert_eq!(resources["requests"]["memory"], "256Mi");
    let raised = event(&calls, "MemoryLimitRaised").body["note"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        raised.contains("raised from 256Mi to 384Mi")
            && raised.contains("pod demo-default-worker-1 was OOM-killed at 256Mi"),
        "{raised}"
    );
    let record = &written_status(&calls)["workerGroups"][0]["raisedMemoryLimit"];
    assert_eq!(record["limit"], "384Mi");
    assert_eq!(record["specLimit"], "256Mi");
}

/// The scheduler container OOM-killed and restarted in place: one SchedulerOOMKilled
/// Warning (work lost, clients disconnected), the kill in status.scheduler.oomKills and a
/// True SchedulerOOMKilled condition; the pod itself is left to the kubelet.
#[tokio::test]
async fn scheduler_oom_kill_is_reported_and_recorded() {
    let mut pods = pods_of(&cluster("demo"));
    pods[0] = crate::fixtures::restarted_after(pods[0].clone(), "OOMKilled", 100);
    let world = World {
        pods,
        token: Some("t".to_owned()),
        ..World::default()
    };
    let calls = reconcile_against(world.clone(), cluster("demo")).await;
    assert!(
        !calls.iter().any(|c| c.method == "DELETE"),
        "{:?}",
        lines(&calls)
    );
    assert_eq!(event_reasons(&calls), ["SchedulerOOMKilled", "ImagePinned"]);
    let note = event(&calls, "SchedulerOOMKilled").body["note"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        note.contains("scheduler pod demo-scheduler was OOM-killed")
            && note.contains("running work is lost and clients are disconnected"),
        "{note}"
    );
    let status = written_status(&calls);
    assert_eq!(status["scheduler"]["oomKills"]["total"], 1);
    assert_eq!(condition(status, "SchedulerOOMKilled")["status"], "True");
    let ready = condition(status, "SchedulerReady");
    assert_eq!(ready["reason"], "OOMKilled");

    let again = reconcile_against(world, with_written_status(cluster("demo"), &calls)).await;
    assert!(
        event_reasons(&again).is_empty(),
        "{:?}",
        event_reasons(&again)
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
    let status = written_status(&calls);
    assert_eq!(status["phase"], "Failed");
    let valid = condition(status, "Valid");
    assert_eq!(valid["status"], "False");
    assert!(
        valid["message"]
            .as_str()
            .is_some_and(|m| m.contains("rename it")),
        "{valid}"
    );
}

/// A failed apply (the Service IP range is full) is written to status before the error
/// is returned: phase Degraded, Applied=False naming the object and the API's message.
#[tokio::test]
async fn failed_apply_is_degraded_in_status() {
    let world = World {
        token: Some("t".to_owned()),
        service_range_full: true,
        ..World::default()
    };
    let (result, calls) = reconcile_result(world, cluster("demo")).await;
    assert!(
        matches!(result, Err(super::Error::Apply { .. })),
        "{result:?}"
    );
    assert_eq!(
        lines(&calls),
        [
            "GET /apis/shoal.dev/v1alpha1/namespaces/ns/shoalworkergroups".to_owned(),
            format!("GET {NS}/pods"),
            format!("GET {NS}/secrets/demo-token"),
            format!("PATCH {NS}/services/demo-scheduler"),
            "POST /apis/events.k8s.io/v1/namespaces/ns/events".to_owned(),
            "PATCH /apis/shoal.dev/v1alpha1/namespaces/ns/shoalclusters/demo/status".to_owned(),
        ]
    );
    let status = written_status(&calls);
    assert_eq!(status["phase"], "Degraded");
    let applied = condition(status, "Applied");
    assert_eq!(applied["status"], "False");
    let message = applied["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Service demo-scheduler") && message.contains("range is full"),
        "{message}"
    );
    let event = find(&calls, "POST /apis/events.k8s.io/v1/namespaces/ns/events");
    assert_eq!(event.body["reason"], "ApplyFailed");
}

/// An autoscaling group whose scheduler is not ready keeps its count (min holds), says
/// SchedulerUnreachable in status, and is looked at again within 5 s.
#[tokio::test]
async fn autoscaling_without_a_scheduler_keeps_the_count() {
    let mut c = cluster("demo");
    c.spec.workers.autoscaling.enabled = true;
    c.spec.workers.min_replicas = 1;
    let (result, calls) = reconcile_result(World::default(), c).await;
    let action = result.unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(Duration::from_secs(5))
    );
    let status = written_status(&calls);
    let autoscaler = &status["workerGroups"][0]["autoscaler"];
    assert_eq!(autoscaler["state"], "SchedulerUnreachable");
    assert_eq!(autoscaler["target"], 1);
    assert_eq!(status["desiredWorkers"], 1);
    assert!(
        calls
            .iter()
            .any(|c| c.line() == format!("PATCH {NS}/pods/demo-default-worker-0"))
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.line() == format!("PATCH {NS}/pods/demo-default-worker-1"))
    );
}

/// The NetworkPolicy is applied with the Service, before the scheduler pod, as the
/// operator's field manager, controlled by the cluster and admitting the operator.
#[tokio::test]
async fn network_policy_is_applied_before_the_scheduler_pod() {
    let calls = reconcile_against(World::default(), cluster("demo")).await;
    let order = lines(&calls);
    let at = |line: String| order.iter().position(|l| *l == line);
    assert!(
        at(format!("PATCH {POLICIES}/demo-scheduler"))
            < at(format!("PATCH {NS}/pods/demo-scheduler")),
        "{order:?}"
    );
    let policy = find(&calls, &format!("PATCH {POLICIES}/demo-scheduler"));
    assert!(
        policy.uri.contains("fieldManager=shoal-operator"),
        "{}",
        policy.uri
    );
    assert_eq!(
        policy.body["metadata"]["ownerReferences"][0]["uid"],
        "uid-demo"
    );
    assert_eq!(
        policy.body["spec"]["ingress"][0]["from"][2]["podSelector"]["matchLabels"],
        json!({"app.kubernetes.io/name": "shoal-operator"})
    );
}

/// With NetworkPolicies off, none is applied; one the cluster controls is deleted by
/// uid, one of the same name it does not control is left alone.
#[tokio::test]
async fn disabled_network_policy_deletes_only_the_clusters_own() {
    let owned = |uid: &str| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "demo-scheduler", "namespace": "ns", "uid": "np-uid",
                            "ownerReferences": [{"apiVersion": "shoal.dev/v1alpha1", "kind": "ShoalCluster",
                                                 "name": "demo", "uid": uid, "controller": true}]},
               "spec": {"podSelector": {}}})
    };
    let world = |policy: Option<Value>| World {
        token: Some("t".to_owned()),
        network_off: true,
        policy,
        ..World::default()
    };
    let calls = reconcile_against(world(None), cluster("demo")).await;
    assert!(
        !calls
            .iter()
            .any(|c| c.uri.contains("networkpolicies") && c.method != "GET"),
        "{:?}",
        lines(&calls)
    );
    let calls = reconcile_against(world(Some(owned("uid-demo"))), cluster("demo")).await;
    let delete = find(&calls, &format!("DELETE {POLICIES}/demo-scheduler"));
    assert_eq!(delete.body["preconditions"]["uid"], "np-uid");
    let calls = reconcile_against(world(Some(owned("someone-else"))), cluster("demo")).await;
    assert!(
        !calls.iter().any(|c| c.method == "DELETE"),
        "{:?}",
        lines(&calls)
    );
}

fn leased(renewed_seconds_ago: i64) -> (ShoalCluster, World) {
    let now = jiff::Timestamp::now();
    let ago = |s: i64| {
        now.checked_sub(jiff::SignedDuration::from_secs(s))
            .unwrap_or_else(|e| unreachable!("{e}"))
    };
    let mut demo = cluster("demo");
    demo.spec.client_lease = Some(crate::crd::ClientLease {
        duration_seconds: 20,
    });
    demo.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        ago(600),
    ));
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                       "metadata": {"name": "demo-client", "namespace": "ns"},
                       "spec": {"holderIdentity": "laptop/4242", "leaseDurationSeconds": 20,
                                "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(ago(renewed_seconds_ago))}});
    let world = World {
        token: Some("t".to_owned()),
        lease: Some(lease),
        ..World::default()
    };
    (demo, world)
}

/// A client lease not renewed for its duration: the Lease is read, one LeaseExpired
/// Warning names the holder and the fix, and the cluster is deleted (uid precondition);
/// nothing is applied and no status is written.
#[tokio::test]
async fn expired_client_lease_deletes_the_cluster() {
    let (demo, world) = leased(60);
    let calls = reconcile_against(world, demo).await;
    assert_eq!(
        lines(&calls),
        [
            "GET /apis/shoal.dev/v1alpha1/namespaces/ns/shoalworkergroups".to_owned(),
            format!("GET {NS}/pods"),
            format!("GET {NS}/secrets/demo-token"),
            "GET /apis/coordination.k8s.io/v1/namespaces/ns/leases/demo-client".to_owned(),
            "POST /apis/events.k8s.io/v1/namespaces/ns/events".to_owned(),
            format!("DELETE {CLUSTERS}/demo"),
        ]
    );
    assert_eq!(
        find(&calls, &format!("DELETE {CLUSTERS}/demo")).body["preconditions"]["uid"],
        "uid-demo"
    );
    let expired = event(&calls, "LeaseExpired");
    assert_eq!(expired.body["type"], "Warning");
    let note = expired.body["note"].as_str().unwrap_or_default();
    for needle in [
        "held by laptop/4242",
        "durationSeconds is 20 s",
        "set spec.clientLease to null",
    ] {
        assert!(note.contains(needle), "{needle:?} not in {note}");
    }
}

/// A renewed client lease keeps the cluster: it is reconciled as usual and
/// status.clientLease shows the holder, the renewal and the expiry 20 s after it.
#[tokio::test]
async fn held_client_lease_is_shown_in_status() {
    let (demo, world) = leased(5);
    let calls = reconcile_against(world, demo).await;
    assert!(
        !calls
            .iter()
            .any(|c| c.line() == format!("DELETE {CLUSTERS}/demo")),
        "{:?}",
        lines(&calls)
    );
    let lease = &written_status(&calls)["clientLease"];
    assert_eq!(lease["holder"], "laptop/4242");
    let seconds = |field: &str| {
        lease[field]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map_or(0, |t| t.as_second())
    };
    assert_eq!(seconds("expiresAt") - seconds("renewTime"), 20, "{lease}");
}

/// Without spec.clientLease the Lease is never read and status.clientLease is cleared.
#[tokio::test]
async fn no_client_lease_reads_no_lease() {
    let calls = reconcile_against(World::default(), cluster("demo")).await;
    assert!(
        !calls.iter().any(|c| c.uri.contains("/leases/")),
        "{:?}",
        lines(&calls)
    );
    assert_eq!(written_status(&calls)["clientLease"], Value::Null);
}
