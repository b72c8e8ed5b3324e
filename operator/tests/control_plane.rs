//! The operator against a real API server (etcd + kube-apiserver + kube-controller-manager
//! from `make e2e-up MODE=control-plane`; no kubelet, so pods stay Pending). Each test
//! runs its own operator process on its own namespace. Run by `make e2e-control-plane`.
#![allow(clippy::panic, reason = "test failures panic with what was expected")]

mod harness;

use harness::{Bed, OperatorProcess};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::{Api, ResourceExt};
use shoal_operator::crd::{ShoalCluster, ShoalJob};
use std::collections::BTreeSet;

/// examples/cluster.yaml creates the token Secret, scheduler Pod and Service, and workers,
/// all owned by the cluster; status and conditions follow with observedGeneration.
#[tokio::test]
#[ignore = "needs the e2e control plane: run `make e2e-control-plane`"]
async fn example_cluster_creates_owned_objects_and_status() {
    let bed = Bed::new("example").await;
    let _operator = OperatorProcess::start(&bed);
    bed.kubectl_apply_file("examples/cluster.yaml");

    let pods = bed
        .wait_for_pod_names(
            "the scheduler and two workers",
            &[
                "demo-default-worker-0",
                "demo-default-worker-1",
                "demo-scheduler",
            ],
        )
        .await;
    let cluster: ShoalCluster = bed.get("demo").await;
    let uid = cluster.uid().expect("uid");
    for pod in &pods {
        bed.assert_owned_by(
            pod.metadata.owner_references.as_ref(),
            &uid,
            &pod.name_any(),
        );
    }
    let service: Service = bed.get("demo-scheduler").await;
    bed.assert_owned_by(service.metadata.owner_references.as_ref(), &uid, "service");
    let secret: Secret = bed.get("demo-token").await;
    bed.assert_owned_by(secret.metadata.owner_references.as_ref(), &uid, "secret");
    assert!(secret.data.expect("data").contains_key("token"));

    let status = bed
        .wait_for("status with observedGeneration", || async {
            let c: ShoalCluster = bed.get("demo").await;
            c.status
                .filter(|s| s.observed_generation == c.metadata.generation)
        })
        .await;
    assert_eq!(
        status.phase.map(|p| p.to_string()).as_deref(),
        Some("Pending")
    );
    assert_eq!(status.desired_workers, 2);
    assert_eq!(status.version.as_deref(), Some(shoal_operator::VERSION));
    let condition = |t: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| c.status.clone())
    };
    assert_eq!(condition("Valid").as_deref(), Some("True"));
    assert_eq!(condition("SchedulerReady").as_deref(), Some("False"));
    assert_eq!(condition("Ready").as_deref(), Some("False"));
    let events = bed.kubectl(&["get", "events", "-o", "jsonpath={.items[*].reason}"]);
    assert!(events.contains("Created"), "events: {events}");
}

/// `kubectl scale` on the cluster changes the worker count both ways.
#[tokio::test]
#[ignore = "needs the e2e control plane: run `make e2e-control-plane`"]
async fn kubectl_scale_changes_the_worker_count() {
    let bed = Bed::new("scale").await;
    let _operator = OperatorProcess::start(&bed);
    bed.kubectl_apply_file("examples/cluster.yaml");
    bed.wait_for_worker_count(2).await;
    bed.kubectl(&["scale", "shoalcluster/demo", "--replicas=4"]);
    bed.wait_for_worker_count(4).await;
    bed.kubectl(&["scale", "shoalcluster/demo", "--replicas=1"]);
    let pods = bed.wait_for_worker_count(1).await;
    assert_eq!(pods[0].name_any(), "demo-default-worker-0");
    let replicas = bed.field("shoalcluster/demo", "{.spec.workers.replicas}");
    assert_eq!(replicas, "1");
}

/// Deleting the cluster removes every object it owns (owner references + garbage collector).
#[tokio::test]
#[ignore = "needs the e2e control plane: run `make e2e-control-plane`"]
async fn deleting_the_cluster_removes_everything() {
    let bed = Bed::new("delete").await;
    let _operator = OperatorProcess::start(&bed);
    bed.kubectl_apply_file("examples/cluster.yaml");
    bed.wait_for_worker_count(2).await;
    bed.kubectl(&["delete", "shoalcluster/demo", "--wait=true"]);
    bed.wait_for(
        "every pod, Service and Secret of the cluster to be gone",
        || async {
            let left = bed.kubectl(&[
                "get",
                "pods,services,secrets",
                "-l",
                "shoal.dev/cluster=demo",
                "-o",
                "name",
            ]);
            left.is_empty().then_some(())
        },
    )
    .await;
}

/// Invalid manifests are refused by the API server, naming the field and why.
#[tokio::test]
#[ignore = "needs the e2e control plane: run `make e2e-control-plane`"]
async fn invalid_manifests_are_refused_with_the_field_and_why() {
    let bed = Bed::new("invalid").await;
    let refused = |manifest: &str| bed.kubectl_apply_refused(manifest);

    let min_over_max = refused(
        "apiVersion: shoal.dev/v1alpha1\nkind: ShoalCluster\nmetadata: {name: a}\nspec: {workers: {replicas: 1, minReplicas: 5, maxReplicas: 2}}\n",
    );
    assert!(
        min_over_max.contains("spec.workers.minReplicas")
            && min_over_max.contains("minReplicas must not exceed maxReplicas"),
        "{min_over_max}"
    );

    let negative = refused(
        "apiVersion: shoal.dev/v1alpha1\nkind: ShoalCluster\nmetadata: {name: b}\nspec: {workers: {replicas: -1}}\n",
    );
    assert!(
        negative.contains("spec.workers.replicas")
            && negative.contains("greater than or equal to 0"),
        "{negative}"
    );

    let bad_version = refused(
        "apiVersion: shoal.dev/v1alpha1\nkind: ShoalCluster\nmetadata: {name: c}\nspec: {version: latest}\n",
    );
    assert!(bad_version.contains("spec.version"), "{bad_version}");

    bed.kubectl_apply("apiVersion: shoal.dev/v1alpha1\nkind: ShoalCluster\nmetadata: {name: d}\nspec: {tokenSecret: first}\n");
    let immutable = refused(
        "apiVersion: shoal.dev/v1alpha1\nkind: ShoalCluster\nmetadata: {name: d}\nspec: {tokenSecret: second}\n",
    );
    assert!(
        immutable.contains("spec.tokenSecret") && immutable.contains("tokenSecret is immutable"),
        "{immutable}"
    );

    bed.kubectl_apply("apiVersion: shoal.dev/v1alpha1\nkind: ShoalWorkerGroup\nmetadata: {name: g}\nspec: {cluster: d}\n");
    let moved = refused(
        "apiVersion: shoal.dev/v1alpha1\nkind: ShoalWorkerGroup\nmetadata: {name: g}\nspec: {cluster: e}\n",
    );
    assert!(
        moved.contains("spec.cluster") && moved.contains("cluster is immutable"),
        "{moved}"
    );
}

/// An operator killed mid-reconcile and started again creates no duplicate pods and keeps the token.
#[tokio::test]
#[ignore = "needs the e2e control plane: run `make e2e-control-plane`"]
async fn restart_mid_reconcile_creates_no_duplicates() {
    let bed = Bed::new("restart").await;
    let first = OperatorProcess::start(&bed);
    bed.kubectl_apply("apiVersion: shoal.dev/v1alpha1\nkind: ShoalCluster\nmetadata: {name: demo}\nspec: {workers: {replicas: 40}}\n");
    bed.wait_for("the first pods", || async {
        (!bed.pods().await.is_empty()).then_some(())
    })
    .await;
    first.kill();
    let token_before = bed.field("secret/demo-token", "{.data.token}");
    let _second = OperatorProcess::start(&bed);
    let pods = bed.wait_for_worker_count(40).await;
    let names: BTreeSet<String> = pods.iter().map(ResourceExt::name_any).collect();
    let expected: BTreeSet<String> = (0..40)
        .map(|i| format!("demo-default-worker-{i}"))
        .collect();
    assert_eq!(names, expected);
    let all = bed.pods().await;
    assert_eq!(
        all.len(),
        41,
        "exactly one scheduler and 40 workers: {:?}",
        all.iter().map(ResourceExt::name_any).collect::<Vec<_>>()
    );
    let token_after = bed.field("secret/demo-token", "{.data.token}");
    assert_eq!(token_before, token_after);
}

/// A ShoalWorkerGroup adds its own pods; deleting it removes them.
#[tokio::test]
#[ignore = "needs the e2e control plane: run `make e2e-control-plane`"]
async fn worker_groups_add_and_remove_their_pods() {
    let bed = Bed::new("groups").await;
    let _operator = OperatorProcess::start(&bed);
    bed.kubectl_apply_file("examples/cluster.yaml");
    bed.kubectl_apply("apiVersion: shoal.dev/v1alpha1\nkind: ShoalWorkerGroup\nmetadata: {name: highmem}\nspec: {cluster: demo, workers: {replicas: 2}}\n");
    bed.wait_for_worker_count(4).await;
    let status = bed
        .wait_for("the group's status", || async {
            let out = bed.field("shoalworkergroup/highmem", "{.status.workers.current}");
            (out == "2").then_some(out)
        })
        .await;
    assert_eq!(status, "2");
    bed.kubectl(&["delete", "shoalworkergroup/highmem"]);
    let pods = bed.wait_for_worker_count(2).await;
    assert!(
        pods.iter()
            .all(|p| p.name_any().starts_with("demo-default-"))
    );
}

/// A worker pod edited to another image is reported as a VersionSkew condition naming both versions.
#[tokio::test]
#[ignore = "needs the e2e control plane: run `make e2e-control-plane`"]
async fn edited_worker_image_shows_a_version_skew_condition() {
    let bed = Bed::new("skew").await;
    let _operator = OperatorProcess::start(&bed);
    bed.kubectl_apply_file("examples/cluster.yaml");
    bed.wait_for_worker_count(2).await;
    bed.kubectl(&[
        "set",
        "image",
        "pod/demo-default-worker-1",
        "worker=shoal.dev/shoal:0.0.9",
    ]);
    let message = bed
        .wait_for("a VersionSkew condition", || async {
            let c: ShoalCluster = bed.get("demo").await;
            c.status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "VersionSkew" && c.status == "True")
                .map(|c| c.message)
        })
        .await;
    assert!(message.contains("demo-default-worker-1"), "{message}");
    assert!(message.contains("version 0.0.9"), "{message}");
    assert!(
        message.contains(&format!("version {}", shoal_operator::VERSION)),
        "{message}"
    );
}

/// Changing spec.version replaces every pod with pods of the new version (Recreate).
#[tokio::test]
#[ignore = "needs the e2e control plane: run `make e2e-control-plane`"]
async fn version_change_recreates_every_pod() {
    let bed = Bed::new("upgrade").await;
    let _operator = OperatorProcess::start(&bed);
    bed.kubectl_apply("apiVersion: shoal.dev/v1alpha1\nkind: ShoalCluster\nmetadata: {name: demo}\nspec: {version: 0.0.1, workers: {replicas: 2}}\n");
    bed.wait_for_worker_count(2).await;
    bed.kubectl(&[
        "patch",
        "shoalcluster/demo",
        "--type=merge",
        "-p",
        r#"{"spec":{"version":"0.0.2"}}"#,
    ]);
    bed.wait_for("every pod on version 0.0.2", || async {
        let pods: Vec<Pod> = bed.pods().await;
        let versions: Vec<String> = pods
            .iter()
            .filter_map(|p| p.labels().get("app.kubernetes.io/version").cloned())
            .collect();
        (pods.len() == 3 && versions.iter().all(|v| v == "0.0.2")).then_some(())
    })
    .await;
    let image = bed.field("pod/demo-scheduler", "{.spec.containers[0].image}");
    assert_eq!(image, "shoal.dev/shoal:0.0.2");
}

/// Two replicas: one holds the Lease and reconciles; when it dies the other takes over.
#[tokio::test]
#[ignore = "needs the e2e control plane: run `make e2e-control-plane`"]
async fn a_standby_replica_takes_over_when_the_leader_dies() {
    let bed = Bed::new("leader").await;
    let first = OperatorProcess::start(&bed);
    let holder = bed
        .wait_for("a Lease holder", || async {
            let out = bed.kubectl(&[
                "get",
                "lease",
                "shoal-operator",
                "--ignore-not-found",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ]);
            (!out.is_empty()).then_some(out)
        })
        .await;
    let _second = OperatorProcess::start(&bed);
    bed.kubectl_apply_file("examples/cluster.yaml");
    bed.wait_for_worker_count(2).await;
    first.kill();
    let new_holder = bed
        .wait_for("another replica to take the Lease", || async {
            let out = bed.field("lease/shoal-operator", "{.spec.holderIdentity}");
            (!out.is_empty() && out != holder).then_some(out)
        })
        .await;
    assert_ne!(new_holder, holder);
    bed.kubectl(&["scale", "shoalcluster/demo", "--replicas=3"]);
    bed.wait_for_worker_count(3).await;
}

/// The API server refuses unusable OOM settings with the field and why, and takes
/// examples/oom-policy.yaml, whose worker pods get the SHOAL_MEMORY_* env vars.
#[tokio::test]
#[ignore = "needs the e2e control plane: run `make e2e-control-plane`"]
async fn oom_settings_are_checked_and_reach_the_workers() {
    let bed = Bed::new("oom").await;
    let refused = |manifest: &str| bed.kubectl_apply_refused(manifest);
    let factor = refused(
        "apiVersion: shoal.dev/v1alpha1\nkind: ShoalCluster\nmetadata: {name: a}\nspec: {workers: {oomPolicy: {increaseFactor: 1, maxMemory: 4Gi}}}\n",
    );
    assert!(
        factor.contains("spec.workers.oomPolicy.increaseFactor")
            && factor.contains("must be above 1 and at most 10"),
        "{factor}"
    );
    let max = refused(
        "apiVersion: shoal.dev/v1alpha1\nkind: ShoalCluster\nmetadata: {name: b}\nspec: {workers: {oomPolicy: {maxMemory: lots}}}\n",
    );
    assert!(
        max.contains("spec.workers.oomPolicy.maxMemory")
            && max.contains("must be a positive memory quantity"),
        "{max}"
    );
    let order = refused(
        "apiVersion: shoal.dev/v1alpha1\nkind: ShoalCluster\nmetadata: {name: c}\nspec: {workers: {memoryThresholds: {target: 0.6, spill: 0, pause: 0.5}}}\n",
    );
    assert!(
        order.contains("spec.workers.memoryThresholds")
            && order.contains("memoryThresholds must increase"),
        "{order}"
    );
    let range = refused(
        "apiVersion: shoal.dev/v1alpha1\nkind: ShoalCluster\nmetadata: {name: d}\nspec: {workers: {memoryThresholds: {terminate: 1.5}}}\n",
    );
    assert!(
        range.contains("spec.workers.memoryThresholds.terminate"),
        "{range}"
    );

    let _operator = OperatorProcess::start(&bed);
    bed.kubectl_apply_file("examples/oom-policy.yaml");
    let pods = bed.wait_for_worker_count(2).await;
    let env: BTreeSet<String> = pods[0]
        .spec
        .iter()
        .flat_map(|s| s.containers[0].env.iter().flatten())
        .map(|e| format!("{}={}", e.name, e.value.clone().unwrap_or_default()))
        .collect();
    for var in [
        "SHOAL_MEMORY_TARGET=0.6",
        "SHOAL_MEMORY_SPILL=0.7",
        "SHOAL_MEMORY_PAUSE=0.8",
        "SHOAL_MEMORY_TERMINATE=0.95",
    ] {
        assert!(env.contains(var), "{var} not in {env:?}");
    }
    let killed = bed
        .wait_for("the WorkersOOMKilled condition", || async {
            let out = bed.field(
                "shoalcluster/tight",
                "{.status.conditions[?(@.type==\"WorkersOOMKilled\")].status}",
            );
            (!out.is_empty()).then_some(out)
        })
        .await;
    assert_eq!(killed, "False");
}

/// A manifest of ShoalJob `name` with `spec` (flow-style YAML) added to a valid base.
fn job_manifest(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: shoal.dev/v1alpha1\nkind: ShoalJob\nmetadata: {{name: {name}}}\nspec: {{cluster: {{workers: {{replicas: 0}}}}, runner: {{command: [sh, -c, 'sleep 600']}}{spec}}}\n"
    )
}

/// The API server refuses bad ShoalJob specs with the field and the rule's message, and
/// a created job's spec cannot change except ttlSecondsAfterFinished.
#[tokio::test]
#[ignore = "needs the e2e control plane: run `make e2e-control-plane`"]
async fn job_schema_rules_refuse_bad_specs() {
    let bed = Bed::new("jobrules").await;
    let refused = |manifest: &str| bed.kubectl_apply_refused(manifest);
    for (spec, field, message) in [
        (
            ", backoffLimit: -1",
            "spec.backoffLimit",
            "backoffLimit must be between 0 and 10",
        ),
        (
            ", backoffLimit: 11",
            "spec.backoffLimit",
            "backoffLimit must be between 0 and 10",
        ),
        (
            ", activeDeadlineSeconds: 0",
            "spec.activeDeadlineSeconds",
            "activeDeadlineSeconds must be above 0",
        ),
        (
            ", ttlSecondsAfterFinished: -5",
            "spec.ttlSecondsAfterFinished",
            "ttlSecondsAfterFinished must be between 0 and 31536000",
        ),
    ] {
        let out = refused(&job_manifest("bad", spec));
        assert!(
            out.contains(field) && out.contains(message),
            "{spec}: {out}"
        );
    }
    let empty = refused(
        "apiVersion: shoal.dev/v1alpha1\nkind: ShoalJob\nmetadata: {name: empty}\nspec: {cluster: {}, runner: {command: []}}\n",
    );
    assert!(
        empty.contains("spec.runner.command")
            && empty.contains("runner.command must name the program"),
        "{empty}"
    );
    let missing = refused(
        "apiVersion: shoal.dev/v1alpha1\nkind: ShoalJob\nmetadata: {name: missing}\nspec: {runner: {command: [python3]}}\n",
    );
    assert!(
        missing.contains("spec.cluster") && missing.contains("Required"),
        "{missing}"
    );
    // The embedded cluster template is checked by the cluster's own rules.
    let template = refused(&job_manifest(
        "template",
        ", cluster: {workers: {replicas: 1, minReplicas: 2}}",
    ));
    assert!(
        template.contains("minReplicas must not exceed maxReplicas")
            || template.contains("replicas must lie between"),
        "{template}"
    );

    let lease = refused(&job_manifest(
        "lease",
        ", cluster: {clientLease: {durationSeconds: 60}}",
    ));
    assert!(
        lease.contains("spec.cluster.clientLease")
            && lease.contains("does not apply to a ShoalJob"),
        "{lease}"
    );

    bed.kubectl_apply(&job_manifest("fixed", ", backoffLimit: 1"));
    let changed = refused(&job_manifest("fixed", ", backoffLimit: 2"));
    assert!(
        changed.contains("spec is immutable except ttlSecondsAfterFinished"),
        "{changed}"
    );
    let deadline = refused(&job_manifest(
        "fixed",
        ", backoffLimit: 1, activeDeadlineSeconds: 60",
    ));
    assert!(deadline.contains("spec is immutable"), "{deadline}");
    bed.kubectl_apply(&job_manifest(
        "fixed",
        ", backoffLimit: 1, ttlSecondsAfterFinished: 60",
    ));
    assert_eq!(
        bed.field("shoaljob/fixed", "{.spec.ttlSecondsAfterFinished}"),
        "60"
    );
    let listed = bed.kubectl(&["get", "shj"]);
    for column in ["STATUS", "COMPLETIONS", "ATTEMPTS", "DURATION", "AGE"] {
        assert!(listed.contains(column), "{listed}");
    }
}

/// A ShoalJob's cluster, and the runner pod started once the cluster is Running, are
/// controlled by the job; the runner carries the cluster's client label and finds the
/// scheduler and token in its environment. (Without a kubelet the scheduler pod's status
/// is set to ready by hand.)
#[tokio::test]
#[ignore = "needs the e2e control plane: run `make e2e-control-plane`"]
async fn job_cluster_and_runner_are_owned_by_the_job() {
    let bed = Bed::new("jobowners").await;
    let _operator = OperatorProcess::start(&bed);
    bed.kubectl_apply(&job_manifest("nightly", ""));
    let job: ShoalJob = bed.get("nightly").await;
    let uid = job.uid().expect("uid");
    let controlled_by_job = |owners: Option<&Vec<_>>, what: &str| {
        let owners: &Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> =
            owners.unwrap_or_else(|| panic!("{what} has no owner references"));
        assert!(
            owners
                .iter()
                .any(|o| o.uid == uid && o.kind == "ShoalJob" && o.controller == Some(true)),
            "{what} is not controlled by the job: {owners:?}"
        );
    };
    let cluster: ShoalCluster = bed
        .wait_for("the job's cluster", || async {
            Api::<ShoalCluster>::namespaced(bed.client.clone(), &bed.namespace)
                .get_opt("nightly-cluster")
                .await
                .ok()
                .flatten()
        })
        .await;
    controlled_by_job(cluster.metadata.owner_references.as_ref(), "the cluster");
    let pending = bed
        .wait_for("the job's Pending status", || async {
            let j: ShoalJob = bed.get("nightly").await;
            j.status.filter(|s| s.phase.is_some())
        })
        .await;
    assert_eq!(pending.cluster_name.as_deref(), Some("nightly-cluster"));
    assert!(pending.start_time.is_some());

    bed.wait_for_pod_names("the cluster's scheduler", &["nightly-cluster-scheduler"])
        .await;
    let ready = r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}],"containerStatuses":[{"name":"scheduler","ready":true,"restartCount":0,"image":"shoal.dev/shoal","imageID":"","state":{"running":{}}}]}}"#;
    let runner: Pod = bed
        .wait_for("the runner pod", || async {
            // A kubelet (full test bed) may report the real state; without one, this does.
            if bed.field("pod/nightly-cluster-scheduler", "{.status.phase}") != "Running" {
                bed.kubectl(&[
                    "patch",
                    "pod/nightly-cluster-scheduler",
                    "--subresource=status",
                    "--type=merge",
                    "-p",
                    ready,
                ]);
            }
            Api::<Pod>::namespaced(bed.client.clone(), &bed.namespace)
                .get_opt("nightly-runner-1")
                .await
                .ok()
                .flatten()
        })
        .await;
    controlled_by_job(runner.metadata.owner_references.as_ref(), "the runner pod");
    let labels = runner.labels();
    assert_eq!(
        labels
            .get("client.shoal.dev/nightly-cluster")
            .map(String::as_str),
        Some("true"),
        "{labels:?}"
    );
    let spec = runner.spec.expect("spec");
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    let env = spec.containers[0].env.clone().unwrap_or_default();
    let address = env
        .iter()
        .find(|e| e.name == "SHOAL_SCHEDULER_ADDRESS")
        .and_then(|e| e.value.clone());
    assert_eq!(
        address,
        Some(format!(
            "nightly-cluster-scheduler.{}.svc:8786",
            bed.namespace
        ))
    );
    let token = env
        .iter()
        .find(|e| e.name == "SHOAL_TOKEN")
        .and_then(|e| e.value_from.clone()?.secret_key_ref);
    assert_eq!(
        token.map(|s| s.name).as_deref(),
        Some("nightly-cluster-token")
    );
    let attempts = bed
        .wait_for("the job to count the attempt", || async {
            let out = bed.field("shoaljob/nightly", "{.status.attempts}");
            (out == "1").then_some(out)
        })
        .await;
    assert_eq!(attempts, "1");
}

/// Each cluster gets the NetworkPolicy `<c>-scheduler`, controlled by it and selecting
/// its scheduler pod: gRPC only from its workers, its client-labelled pods and the
/// operator's pods in the operator's namespace, HTTP from anywhere. Deleted by hand, it
/// is back at once (the controller watches what it owns).
#[tokio::test]
#[ignore = "needs the e2e control plane: run `make e2e-control-plane`"]
async fn network_policy_guards_the_scheduler_port() {
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use serde_json::json;
    let bed = Bed::new("netpol").await;
    let _operator = OperatorProcess::start_with(
        &bed,
        &[(
            "SHOAL_OPERATOR_POD_LABELS",
            "app.kubernetes.io/name=shoal-operator,app.kubernetes.io/instance=shoal",
        )],
    );
    bed.kubectl_apply_file("examples/cluster.yaml");
    let policy_of = || async {
        kube::Api::<NetworkPolicy>::namespaced(bed.client.clone(), &bed.namespace)
            .get_opt("demo-scheduler")
            .await
            .expect("reading the NetworkPolicy")
    };
    let policy = bed
        .wait_for("the NetworkPolicy demo-scheduler", policy_of)
        .await;
    let cluster: ShoalCluster = bed.get("demo").await;
    bed.assert_owned_by(
        policy.metadata.owner_references.as_ref(),
        &cluster.uid().expect("uid"),
        "NetworkPolicy",
    );
    let spec = serde_json::to_value(policy.spec).expect("spec as JSON");
    assert_eq!(
        spec["podSelector"],
        json!({"matchLabels": {"shoal.dev/cluster": "demo", "app.kubernetes.io/component": "scheduler"}})
    );
    assert_eq!(spec["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        spec["ingress"],
        json!([
            {
                "ports": [{"port": 8786, "protocol": "TCP"}],
                "from": [
                    {"podSelector": {"matchLabels": {"shoal.dev/cluster": "demo", "app.kubernetes.io/component": "worker"}}},
                    {"podSelector": {"matchLabels": {"client.shoal.dev/demo": "true"}}},
                    {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": bed.namespace}},
                        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "shoal-operator", "app.kubernetes.io/instance": "shoal"}}
                    }
                ]
            },
            {"ports": [{"port": 8787, "protocol": "TCP"}]}
        ])
    );
    let uid = policy.metadata.uid.clone();
    bed.kubectl(&["delete", "networkpolicy/demo-scheduler"]);
    bed.wait_for("the deleted NetworkPolicy to be back", || async {
        policy_of().await.filter(|p| p.metadata.uid != uid)
    })
    .await;
}

/// With `--network-policy=false` no cluster gets a NetworkPolicy, and the one a cluster
/// got from an operator with them on is deleted.
#[tokio::test]
#[ignore = "needs the e2e control plane: run `make e2e-control-plane`"]
async fn network_policy_off_creates_none_and_removes_the_old_one() {
    let bed = Bed::new("netpoloff").await;
    let on = OperatorProcess::start(&bed);
    bed.kubectl_apply_file("examples/cluster.yaml");
    bed.wait_for("the NetworkPolicy demo-scheduler", || async {
        (!bed
            .kubectl(&[
                "get",
                "networkpolicy",
                "demo-scheduler",
                "--ignore-not-found",
                "-o",
                "name",
            ])
            .is_empty())
        .then_some(())
    })
    .await;
    on.kill();
    let _off = OperatorProcess::start_with(&bed, &[("SHOAL_OPERATOR_NETWORK_POLICY", "false")]);
    bed.kubectl_apply("apiVersion: shoal.dev/v1alpha1\nkind: ShoalCluster\nmetadata: {name: other}\nspec: {workers: {replicas: 1}}\n");
    bed.wait_for("the Service of the second cluster", || async {
        (!bed
            .kubectl(&[
                "get",
                "service",
                "other-scheduler",
                "--ignore-not-found",
                "-o",
                "name",
            ])
            .is_empty())
        .then_some(())
    })
    .await;
    bed.wait_for("no NetworkPolicy left", || async {
        bed.kubectl(&["get", "networkpolicies", "-o", "name"])
            .is_empty()
            .then_some(())
    })
    .await;
}

/// A cluster with spec.clientLease whose Lease is never renewed, and one whose Lease
/// never appears, are deleted soon after their duration (15 s) with a LeaseExpired
/// Warning naming the holder and the fix; while held, status.clientLease shows the holder.
#[tokio::test]
#[ignore = "needs the e2e control plane: run `make e2e-control-plane`"]
async fn unrenewed_client_lease_deletes_the_cluster() {
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use std::time::{Duration, Instant};
    const DURATION: u64 = 15;
    // The requeue lands a second after the expiry; the rest is the API server's.
    const BOUND: Duration = Duration::from_secs(DURATION + 10);
    let bed = Bed::new("lease").await;
    let _operator = OperatorProcess::start(&bed);
    let manifest = |name: &str| {
        format!(
            "apiVersion: shoal.dev/v1alpha1\nkind: ShoalCluster\nmetadata: {{name: {name}}}\nspec: {{workers: {{replicas: 1}}, clientLease: {{durationSeconds: {DURATION}}}}}\n"
        )
    };
    let started = Instant::now();
    bed.kubectl_apply(&manifest("demo"));
    bed.kubectl_apply(&manifest("ghost"));
    let lease = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some("demo-client".to_owned()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("laptop/4242".to_owned()),
            lease_duration_seconds: Some(DURATION as i32),
            renew_time: Some(MicroTime(jiff::Timestamp::now())),
            ..LeaseSpec::default()
        }),
    };
    kube::Api::<Lease>::namespaced(bed.client.clone(), &bed.namespace)
        .create(&kube::api::PostParams::default(), &lease)
        .await
        .expect("creating the Lease");
    let renewed = Instant::now();
    let holder = bed
        .wait_for("status.clientLease.holder", || async {
            let out = bed.field("shoalcluster/demo", "{.status.clientLease.holder}");
            (!out.is_empty()).then_some(out)
        })
        .await;
    assert_eq!(holder, "laptop/4242");
    assert!(
        !bed.field("shoalcluster/demo", "{.status.clientLease.expiresAt}")
            .is_empty()
    );
    for (name, since) in [("demo", renewed), ("ghost", started)] {
        bed.wait_for(&format!("cluster {name} to be deleted"), || async {
            bed.kubectl(&[
                "get",
                "shoalcluster",
                name,
                "--ignore-not-found",
                "-o",
                "name",
            ])
            .is_empty()
            .then_some(())
        })
        .await;
        let took = since.elapsed();
        eprintln!("cluster {name}: deleted {took:?} after its lease started ({DURATION} s)");
        assert!(
            took >= Duration::from_secs(DURATION) && took < BOUND,
            "cluster {name} was deleted {took:?} after its lease started; expected within [{DURATION} s, {BOUND:?})"
        );
    }
    let events: serde_json::Value =
        serde_json::from_str(&bed.kubectl(&["get", "events", "-o", "json"])).expect("events JSON");
    let notes: Vec<(String, String)> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["reason"] == "LeaseExpired" && e["type"] == "Warning")
        .map(|e| {
            (
                e["involvedObject"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                e["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let note = |name: &str| {
        notes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| panic!("no LeaseExpired Event on {name}: {notes:?}"))
    };
    let demo = note("demo");
    assert!(
        demo.contains("held by laptop/4242")
            && demo.contains("durationSeconds is 15 s")
            && demo.contains("set spec.clientLease to null"),
        "{demo}"
    );
    assert!(
        note("ghost").contains("(Lease ghost-client) does not exist"),
        "{notes:?}"
    );
}
