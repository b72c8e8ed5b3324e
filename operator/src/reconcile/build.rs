//! Stage 3, pure: the Kubernetes objects a validated cluster should have. Every function
//! takes a `ValidatedCluster` and plain values (the token, the image to run) and returns
//! an object ready for server-side apply. No client, no clock, no randomness.

use super::memory;
use super::validate::{ValidatedCluster, ValidatedGroup};
use crate::crd::MemoryThresholds;
use crate::names::{self, COMPONENT_SCHEDULER, COMPONENT_WORKER};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, Pod, PodSecurityContext, PodSpec, Probe,
    ResourceRequirements, SeccompProfile, Secret, SecretKeySelector, SecurityContext, Service,
    ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Name, namespace, the cluster's labels and its controller owner reference.
pub(crate) fn metadata(cluster: &ValidatedCluster, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(cluster.namespace.clone()),
        labels: Some(names::cluster_labels(
            &cluster.name,
            component,
            &cluster.version,
        )),
        owner_references: Some(vec![cluster.owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// The Secret holding the cluster's auth token (only when the operator owns it).
pub fn token_secret(cluster: &ValidatedCluster, token: &str) -> Secret {
    Secret {
        metadata: metadata(cluster, cluster.token_secret.clone(), "auth"),
        data: Some(BTreeMap::from([(
            names::TOKEN_KEY.to_owned(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    }
}

/// The scheduler's Service: gRPC for clients and workers, HTTP for dashboard and metrics.
pub fn scheduler_service(cluster: &ValidatedCluster) -> Service {
    let port = |name: &str, port: i32| ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    };
    Service {
        metadata: metadata(
            cluster,
            names::scheduler_service(&cluster.name),
            COMPONENT_SCHEDULER,
        ),
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([
                (names::LABEL_CLUSTER.to_owned(), cluster.name.clone()),
                (
                    names::LABEL_COMPONENT.to_owned(),
                    COMPONENT_SCHEDULER.to_owned(),
                ),
            ])),
            ports: Some(vec![
                port("grpc", names::SCHEDULER_PORT),
                port("http", names::DASHBOARD_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn env_from_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn token_env(cluster: &ValidatedCluster) -> EnvVar {
    EnvVar {
        name: "SHOAL_TOKEN".to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: cluster.token_secret.clone(),
                key: names::TOKEN_KEY.to_owned(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: port,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

fn http_probe(path: &str, port: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(port.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(5),
        ..Probe::default()
    }
}

/// Non-root, no privilege escalation, no capabilities, runtime-default seccomp.
pub(crate) fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        ..SecurityContext::default()
    }
}

/// The pod-level half: non-root as the runtime image's user, runtime-default seccomp.
pub(crate) fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(names::RUNTIME_UID),
        run_as_group: Some(names::RUNTIME_UID),
        fs_group: Some(names::RUNTIME_UID),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// A scratch volume at /tmp (the root filesystem is read-only; workers spill here).
pub(crate) fn scratch() -> (Volume, VolumeMount) {
    (
        Volume {
            name: "scratch".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
        VolumeMount {
            name: "scratch".to_owned(),
            mount_path: "/tmp".to_owned(),
            ..VolumeMount::default()
        },
    )
}

/// A memory-backed volume at /dev/shm for the worker's shared-memory store (containers
/// get a 64 MiB /dev/shm otherwise), at most the container's memory limit: its files
/// count against that limit, as the worker's memory policy counts them.
fn shared_memory(resources: Option<&ResourceRequirements>) -> (Volume, VolumeMount) {
    let limit = resources
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
        .cloned();
    (
        Volume {
            name: "shm".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".to_owned()),
                size_limit: limit,
            }),
            ..Volume::default()
        },
        VolumeMount {
            name: "shm".to_owned(),
            mount_path: "/dev/shm".to_owned(),
            ..VolumeMount::default()
        },
    )
}

/// `spec` running `container` the way every Shoal pod runs: the hardening above (non-root,
/// no capabilities, read-only root with the scratch volume at /tmp), no service-account
/// token and no service links.
fn hardened(mut container: Container, spec: PodSpec) -> PodSpec {
    let (volume, mount) = scratch();
    container.security_context = Some(container_security());
    container.volume_mounts = Some(vec![mount]);
    PodSpec {
        containers: vec![container],
        volumes: Some(vec![volume]),
        security_context: Some(pod_security()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        ..spec
    }
}

fn pull_policy(cluster: &ValidatedCluster) -> String {
    cluster.pull_policy.as_str().to_owned()
}

/// Seconds the scheduler waits for the operator to say why a worker's connection dropped.
const LOSS_REPORT_WAIT_SECONDS: &str = "5";

/// The scheduler pod, from the image by tag (its digest then pins the workers).
pub fn scheduler_pod(cluster: &ValidatedCluster) -> Pod {
    let command = [
        "shoal",
        "scheduler",
        "--listen",
        &format!("0.0.0.0:{}", names::SCHEDULER_PORT),
        "--http-listen",
        &format!("0.0.0.0:{}", names::DASHBOARD_PORT),
        "--cluster-name",
        &cluster.name,
        "--heartbeat-timeout",
        &cluster.heartbeat_timeout_seconds.to_string(),
    ]
    .map(str::to_owned);
    Pod {
        metadata: metadata(
            cluster,
            names::scheduler_pod(&cluster.name),
            COMPONENT_SCHEDULER,
        ),
        spec: Some(hardened(
            Container {
                name: "scheduler".to_owned(),
                image: Some(cluster.image_by_tag()),
                image_pull_policy: Some(pull_policy(cluster)),
                command: Some(command.to_vec()),
                env: Some(vec![
                    token_env(cluster),
                    env("SHOAL_VERSION", &cluster.version),
                    env("SHOAL_LOG", "info"),
                    // The operator reports why workers vanish (ReportWorkerLost) within a
                    // few seconds; the scheduler holds a dropped worker that long, so the
                    // errors of its tasks name the cause (OOMKilled, limit).
                    env("SHOAL_LOSS_REPORT_WAIT", LOSS_REPORT_WAIT_SECONDS),
                ]),
                ports: Some(vec![
                    container_port("grpc", names::SCHEDULER_PORT),
                    container_port("http", names::DASHBOARD_PORT),
                ]),
                readiness_probe: Some(http_probe("/readyz", "http")),
                liveness_probe: Some(Probe {
                    failure_threshold: Some(6),
                    ..http_probe("/healthz", "http")
                }),
                resources: cluster.scheduler_resources.clone(),
                ..Container::default()
            },
            PodSpec {
                restart_policy: Some("Always".to_owned()),
                ..PodSpec::default()
            },
        )),
        ..Pod::default()
    }
}

/// `k=v,k=v` in name order, as the worker's `--resources` flag reads it.
pub fn task_resources_arg(resources: &BTreeMap<String, f64>) -> String {
    resources
        .iter()
        .map(|(name, amount)| format!("{name}={amount}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The env var each memory threshold reaches the worker as (the worker reads exactly these).
pub const MEMORY_THRESHOLD_ENV: [&str; 4] = [
    "SHOAL_MEMORY_TARGET",
    "SHOAL_MEMORY_SPILL",
    "SHOAL_MEMORY_PAUSE",
    "SHOAL_MEMORY_TERMINATE",
];

/// The env vars of the thresholds that are set, in `MEMORY_THRESHOLD_ENV` order.
fn memory_threshold_env(thresholds: Option<&MemoryThresholds>) -> Vec<EnvVar> {
    let Some(t) = thresholds else {
        return Vec::new();
    };
    MEMORY_THRESHOLD_ENV
        .iter()
        .zip([t.target, t.spill, t.pause, t.terminate])
        .filter_map(|(name, value)| Some(env(name, value?.to_string())))
        .collect()
}

/// The group's resources with the memory limit `raised` (bytes) by `oomPolicy`; the
/// memory request is kept, but never above the limit.
fn resources(group: &ValidatedGroup, raised: Option<u64>) -> Option<ResourceRequirements> {
    let Some(limit) = raised else {
        return group.pool.resources.clone();
    };
    let mut resources = group.pool.resources.clone().unwrap_or_default();
    let text = Quantity(memory::format(limit));
    resources
        .limits
        .get_or_insert_with(BTreeMap::new)
        .insert("memory".to_owned(), text.clone());
    if let Some(request) = resources
        .requests
        .as_mut()
        .and_then(|r| r.get_mut("memory"))
        && memory::quantity_bytes(request).is_some_and(|r| r > limit)
    {
        *request = text;
    }
    Some(resources)
}

/// Worker pod `index` of `group`, running `image` (the scheduler's digest once known),
/// with the memory limit `raised` by `oomPolicy` (bytes; `None`: the spec's).
/// Dead workers are replaced by the operator (restart policy `Never`), so a pod killed
/// for memory stays visible as `OOMKilled` until it is handled.
pub fn worker_pod(
    cluster: &ValidatedCluster,
    group: &ValidatedGroup,
    index: i32,
    image: &str,
    raised: Option<u64>,
) -> Pod {
    let mut metadata = metadata(
        cluster,
        names::worker_pod(&cluster.name, &group.name, index),
        COMPONENT_WORKER,
    );
    let labels = metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(names::LABEL_GROUP.to_owned(), group.name.clone());
    labels.insert(names::LABEL_INDEX.to_owned(), index.to_string());

    let mut command: Vec<String> = [
        "shoal",
        "worker",
        "--scheduler",
        &cluster.scheduler_address(),
        "--listen",
        &format!("0.0.0.0:{}", names::WORKER_DATA_PORT),
        "--metrics-listen",
        &format!("0.0.0.0:{}", names::WORKER_METRICS_PORT),
        "--spill-dir",
        "/tmp/spill",
    ]
    .map(str::to_owned)
    .to_vec();
    if let Some(cores) = group.pool.cores {
        command.extend(["--cores".to_owned(), cores.to_string()]);
    }
    let mut env_vars = vec![
        token_env(cluster),
        env_from_field("SHOAL_WORKER_NAME", "metadata.name"),
        env_from_field("SHOAL_ADVERTISE_HOST", "status.podIP"),
        env("SHOAL_VERSION", &cluster.version),
        env("SHOAL_LOG", "info"),
        env("SHOAL_WORKER_GROUP", &group.name),
    ];
    if !group.pool.task_resources.is_empty() {
        env_vars.push(env(
            "SHOAL_WORKER_RESOURCES",
            task_resources_arg(&group.pool.task_resources),
        ));
    }
    env_vars.extend(memory_threshold_env(group.pool.memory_thresholds.as_ref()));
    env_vars.extend(group.pool.env.iter().map(|(k, v)| env(k, v)));
    let resources = resources(group, raised);
    let (shm_volume, shm_mount) = shared_memory(resources.as_ref());

    let mut spec = hardened(
        Container {
            name: "worker".to_owned(),
            image: Some(image.to_owned()),
            image_pull_policy: Some(pull_policy(cluster)),
            command: Some(command),
            env: Some(env_vars),
            ports: Some(vec![
                container_port("data", names::WORKER_DATA_PORT),
                container_port("http", names::WORKER_METRICS_PORT),
            ]),
            readiness_probe: Some(http_probe("/readyz", "http")),
            resources,
            ..Container::default()
        },
        PodSpec {
            restart_policy: Some("Never".to_owned()),
            node_selector: (!group.pool.node_selector.is_empty())
                .then(|| group.pool.node_selector.clone()),
            tolerations: (!group.pool.tolerations.is_empty())
                .then(|| group.pool.tolerations.clone()),
            termination_grace_period_seconds: Some(30),
            ..PodSpec::default()
        },
    );
    spec.volumes.get_or_insert_with(Vec::new).push(shm_volume);
    for container in &mut spec.containers {
        container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(shm_mount.clone());
    }
    Pod {
        metadata,
        spec: Some(spec),
        ..Pod::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{cluster, defaults};
    use crate::reconcile::validate::validate;

    fn validated() -> ValidatedCluster {
        validate(&cluster("demo"), &[], &defaults("0.3.0")).expect("valid")
    }

    /// Every object is owned by the cluster (deletion cascades) and labelled with its version.
    #[test]
    fn objects_are_owned_and_version_labelled() {
        let c = validated();
        let metas = [
            token_secret(&c, "t").metadata,
            scheduler_service(&c).metadata,
            scheduler_pod(&c).metadata,
            worker_pod(&c, &c.groups[0], 0, "img", None).metadata,
        ];
        for meta in metas {
            let owners = meta.owner_references.expect("owned");
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].kind, "ShoalCluster");
            assert_eq!(owners[0].controller, Some(true));
            assert_eq!(meta.labels.expect("labels")[names::LABEL_VERSION], "0.3.0");
        }
    }

    /// The scheduler runs the tag; a worker runs exactly the image it is given (the digest).
    #[test]
    fn scheduler_uses_tag_and_workers_use_given_image() {
        let c = validated();
        let image = |pod: Pod| {
            pod.spec.expect("spec").containers[0]
                .image
                .clone()
                .expect("image")
        };
        assert_eq!(image(scheduler_pod(&c)), "shoal.dev/shoal:0.3.0");
        assert_eq!(
            image(worker_pod(&c, &c.groups[0], 1, "repo@sha256:abc", None)),
            "repo@sha256:abc"
        );
    }

    /// Pods run as the non-root runtime user with no capabilities and the token from the Secret.
    #[test]
    fn pods_are_non_root_and_read_the_token_from_the_secret() {
        let c = validated();
        for pod in [
            scheduler_pod(&c),
            worker_pod(&c, &c.groups[0], 0, "img", None),
        ] {
            let spec = pod.spec.expect("spec");
            let security = spec.security_context.expect("pod security");
            assert_eq!(security.run_as_non_root, Some(true));
            assert_eq!(security.run_as_user, Some(names::RUNTIME_UID));
            let container = &spec.containers[0];
            let sc = container
                .security_context
                .as_ref()
                .expect("container security");
            assert_eq!(sc.allow_privilege_escalation, Some(false));
            let token = container
                .env
                .as_ref()
                .expect("env")
                .iter()
                .find(|e| e.name == "SHOAL_TOKEN");
            let source = token
                .and_then(|e| e.value_from.as_ref())
                .and_then(|v| v.secret_key_ref.as_ref());
            assert_eq!(source.map(|s| s.name.as_str()), Some("demo-token"));
        }
    }

    /// Worker pods have stable names, group labels and point at the scheduler Service.
    #[test]
    fn worker_pods_are_named_and_labelled_by_group_and_index() {
        let c = validated();
        let pod = worker_pod(&c, &c.groups[0], 3, "img", None);
        assert_eq!(pod.metadata.name.as_deref(), Some("demo-default-worker-3"));
        let labels = pod.metadata.labels.expect("labels");
        assert_eq!(labels[names::LABEL_GROUP], "default");
        assert_eq!(labels[names::LABEL_INDEX], "3");
        let command = pod.spec.expect("spec").containers[0]
            .command
            .clone()
            .expect("command");
        assert!(
            command.contains(&"demo-scheduler.ns.svc:8786".to_owned()),
            "{command:?}"
        );
    }

    /// A worker pod names its group and offers its group's task resources through the env.
    #[test]
    fn worker_pods_carry_group_and_task_resources() {
        let mut c = validated();
        c.groups[0].pool.task_resources =
            BTreeMap::from([("highmem".to_owned(), 1.0), ("gpu".to_owned(), 0.5)]);
        let pod = worker_pod(&c, &c.groups[0], 0, "img", None);
        let env: BTreeMap<String, String> = pod.spec.expect("spec").containers[0]
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| Some((e.name, e.value?)))
            .collect();
        assert_eq!(env["SHOAL_WORKER_GROUP"], "default");
        assert_eq!(env["SHOAL_WORKER_RESOURCES"], "gpu=0.5,highmem=1");
        c.groups[0].pool.task_resources.clear();
        let plain = worker_pod(&c, &c.groups[0], 0, "img", None);
        let names: Vec<String> = plain.spec.expect("spec").containers[0]
            .env
            .iter()
            .flatten()
            .map(|e| e.name.clone())
            .collect();
        assert!(!names.contains(&"SHOAL_WORKER_RESOURCES".to_owned()));
    }

    fn env_of(pod: Pod) -> BTreeMap<String, String> {
        pod.spec.expect("spec").containers[0]
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| Some((e.name, e.value?)))
            .collect()
    }

    /// Memory thresholds reach the worker as exactly the SHOAL_MEMORY_* vars that are set
    /// (0 included: it turns a step off); none without thresholds.
    #[test]
    fn memory_thresholds_become_env_vars() {
        let mut c = validated();
        c.groups[0].pool.memory_thresholds = Some(MemoryThresholds {
            target: Some(0.6),
            spill: Some(0.7),
            pause: Some(0.0),
            terminate: None,
        });
        let env = env_of(worker_pod(&c, &c.groups[0], 0, "img", None));
        let memory: Vec<(&str, &str)> = env
            .iter()
            .filter(|(k, _)| k.starts_with("SHOAL_MEMORY_"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            memory,
            [
                ("SHOAL_MEMORY_PAUSE", "0"),
                ("SHOAL_MEMORY_SPILL", "0.7"),
                ("SHOAL_MEMORY_TARGET", "0.6")
            ]
        );
        c.groups[0].pool.memory_thresholds = None;
        let plain = env_of(worker_pod(&c, &c.groups[0], 0, "img", None));
        assert!(!plain.keys().any(|k| k.starts_with("SHOAL_MEMORY_")));
    }

    /// Worker pods get a memory-backed /dev/shm for the shared-memory store, bounded by
    /// the container's memory limit (raised with it), unbounded without one.
    #[test]
    fn worker_pods_get_a_memory_backed_dev_shm_inside_the_limit() {
        let shm = |pod: Pod| {
            let spec = pod.spec.expect("spec");
            let mount = spec.containers[0]
                .volume_mounts
                .iter()
                .flatten()
                .find(|m| m.mount_path == "/dev/shm")
                .expect("mounted at /dev/shm")
                .name
                .clone();
            let volume = spec
                .volumes
                .into_iter()
                .flatten()
                .find(|v| v.name == mount)
                .expect("the mounted volume");
            volume.empty_dir.expect("an emptyDir")
        };
        let mut c = validated();
        c.groups[0].pool.resources = Some(crate::fixtures::memory("256Mi", Some("200Mi")));
        let dir = shm(worker_pod(&c, &c.groups[0], 0, "img", None));
        assert_eq!(dir.medium.as_deref(), Some("Memory"));
        assert_eq!(dir.size_limit.map(|q| q.0).as_deref(), Some("256Mi"));
        let raised = shm(worker_pod(&c, &c.groups[0], 0, "img", Some(384 << 20)));
        assert_eq!(raised.size_limit.map(|q| q.0).as_deref(), Some("384Mi"));
        c.groups[0].pool.resources = None;
        assert_eq!(
            shm(worker_pod(&c, &c.groups[0], 0, "img", None)).size_limit,
            None
        );
    }

    /// A raised memory limit replaces the spec's; the request stays, never above the limit.
    #[test]
    fn raised_memory_limit_keeps_request_at_most_the_limit() {
        let mut c = validated();
        let memory_of = |pod: Pod, part: &str| {
            let resources = pod.spec.expect("spec").containers[0]
                .resources
                .clone()
                .unwrap_or_default();
            let map = if part == "limit" {
                resources.limits
            } else {
                resources.requests
            };
            map.and_then(|m| m.get("memory").map(|q| q.0.clone()))
        };
        c.groups[0].pool.resources = Some(crate::fixtures::memory("256Mi", Some("200Mi")));
        let raised = worker_pod(&c, &c.groups[0], 0, "img", Some(384 << 20));
        assert_eq!(memory_of(raised.clone(), "limit").as_deref(), Some("384Mi"));
        assert_eq!(memory_of(raised, "request").as_deref(), Some("200Mi"));
        let spec = worker_pod(&c, &c.groups[0], 0, "img", None);
        assert_eq!(memory_of(spec, "limit").as_deref(), Some("256Mi"));
        c.groups[0].pool.resources = Some(crate::fixtures::memory("1Gi", Some("1Gi")));
        let lowered = worker_pod(&c, &c.groups[0], 0, "img", Some(512 << 20));
        assert_eq!(memory_of(lowered, "request").as_deref(), Some("512Mi"));
    }

    /// The Service selects the scheduler pod's labels and exposes both named ports.
    #[test]
    fn service_selects_the_scheduler() {
        let c = validated();
        let service = scheduler_service(&c);
        let selector = service
            .spec
            .clone()
            .and_then(|s| s.selector)
            .expect("selector");
        let labels = scheduler_pod(&c).metadata.labels.expect("labels");
        assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
        let ports: Vec<i32> = service
            .spec
            .and_then(|s| s.ports)
            .expect("ports")
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(ports, [8786, 8787]);
    }
}
