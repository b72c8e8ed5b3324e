//! Pure: a `ShoalJob` resolved against the operator's defaults (`ResolvedJob`: names,
//! the pinned version, the token Secret), and the objects it makes from that — its
//! cluster `<job>-cluster` and its runner pods `<job>-runner-<attempt>`, both controlled
//! by the job. No client, no clock.

use crate::crd::{ShoalCluster, ShoalClusterSpec, ShoalJob, ShoalJobSpec};
use crate::names::{self, COMPONENT_RUNNER};
use crate::reconcile::build;
use crate::reconcile::validate::Defaults;
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, Pod, PodSpec, SecretKeySelector, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use std::collections::BTreeMap;

/// Name of the runner's container (its logs are read by this name).
pub const RUNNER_CONTAINER: &str = "runner";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the ShoalJob has no {field}; it was not read from the API server")]
pub struct MissingMetadata {
    pub field: &'static str,
}

/// A job with its names and defaults resolved: the only input the builders take.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedJob {
    pub name: String,
    pub namespace: String,
    pub generation: Option<i64>,
    /// The job as controller of what it makes.
    pub owner: OwnerReference,
    pub spec: ShoalJobSpec,
    /// The cluster's runtime version: the template's, else the operator's.
    pub version: String,
    /// The cluster's image repository: the template's, else the operator's default.
    pub image_repository: String,
    /// `<job>-cluster`.
    pub cluster: String,
    /// The Secret holding the cluster's token: the template's `tokenSecret`, else
    /// `<job>-cluster-token` (which the cluster's reconcile creates).
    pub token_secret: String,
}

impl ResolvedJob {
    /// `host:port` of the cluster's scheduler inside the Kubernetes cluster.
    pub fn scheduler_address(&self) -> String {
        format!(
            "{}.{}.svc:{}",
            names::scheduler_service(&self.cluster),
            self.namespace,
            names::SCHEDULER_PORT
        )
    }

    /// The runner's image: `runner.image`, else the cluster's runtime image at its version.
    pub fn runner_image(&self) -> String {
        self.spec
            .runner
            .image
            .clone()
            .unwrap_or_else(|| format!("{}:{}", self.image_repository, self.version))
    }

    /// Runner attempts allowed in all (`backoffLimit + 1`).
    pub fn max_attempts(&self) -> i32 {
        self.spec.backoff_limit.max(0).saturating_add(1)
    }
}

/// Resolves names and defaults; fails only on an object not read from the API server.
pub fn resolve(job: &ShoalJob, defaults: &Defaults) -> Result<ResolvedJob, MissingMetadata> {
    let name = job
        .metadata
        .name
        .clone()
        .ok_or(MissingMetadata { field: "name" })?;
    let namespace = job
        .metadata
        .namespace
        .clone()
        .ok_or(MissingMetadata { field: "namespace" })?;
    let owner = job
        .controller_owner_ref(&())
        .ok_or(MissingMetadata { field: "uid" })?;
    let template = &job.spec.cluster;
    let cluster = names::job_cluster(&name);
    Ok(ResolvedJob {
        version: template
            .version
            .clone()
            .unwrap_or_else(|| defaults.version.clone()),
        image_repository: template
            .image
            .clone()
            .unwrap_or_else(|| defaults.image.clone()),
        token_secret: template
            .token_secret
            .clone()
            .unwrap_or_else(|| names::token_secret(&cluster)),
        cluster,
        name,
        namespace,
        generation: job.metadata.generation,
        owner,
        spec: job.spec.clone(),
    })
}

/// Labels of everything a job makes.
fn job_labels(job: &ResolvedJob, instance: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "shoal".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), instance.to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            names::MANAGER.to_owned(),
        ),
        (names::LABEL_COMPONENT.to_owned(), component.to_owned()),
        (names::LABEL_VERSION.to_owned(), job.version.clone()),
        (names::LABEL_JOB.to_owned(), job.name.clone()),
    ])
}

/// The job's cluster: the template with the version and image pinned (so the runner's
/// default image and the cluster never differ, even if the operator's default moves).
pub fn cluster(job: &ResolvedJob) -> ShoalCluster {
    let spec = ShoalClusterSpec {
        version: Some(job.version.clone()),
        image: Some(job.image_repository.clone()),
        ..job.spec.cluster.clone()
    };
    let mut cluster = ShoalCluster::new(&job.cluster, spec);
    cluster.metadata = ObjectMeta {
        name: Some(job.cluster.clone()),
        namespace: Some(job.namespace.clone()),
        labels: Some(job_labels(job, &job.cluster, "cluster")),
        owner_references: Some(vec![job.owner.clone()]),
        ..ObjectMeta::default()
    };
    cluster
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

/// The runner's own environment: where the scheduler is, its token (from the cluster's
/// Secret, never copied into the pod spec), which cluster, job and attempt.
fn runner_env(job: &ResolvedJob, attempt: i32) -> Vec<EnvVar> {
    vec![
        env("SHOAL_SCHEDULER_ADDRESS", job.scheduler_address()),
        EnvVar {
            name: "SHOAL_TOKEN".to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: job.token_secret.clone(),
                    key: names::TOKEN_KEY.to_owned(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
        env("SHOAL_CLUSTER", &job.cluster),
        env("SHOAL_JOB", &job.name),
        env("SHOAL_JOB_ATTEMPT", attempt.to_string()),
    ]
}

/// Runner pod `attempt` (1, 2, ...): the user's command, restart policy `Never` (a
/// failed attempt stays visible with its exit code and logs; the operator starts the
/// next one), hardened like the operator's other pods: non-root (uid 10001, the runtime
/// image's user), no privilege escalation, no capabilities, runtime-default seccomp, no
/// service-account token. Unlike the scheduler and workers its root filesystem stays
/// writable (user code writes where it likes); /tmp is a scratch volume.
pub fn runner_pod(job: &ResolvedJob, attempt: i32) -> Pod {
    let runner = &job.spec.runner;
    let mut labels = job_labels(job, &job.name, COMPONENT_RUNNER);
    labels.insert(names::LABEL_JOB_ATTEMPT.to_owned(), attempt.to_string());
    // The cluster's NetworkPolicy admits pods with its client label.
    labels.insert(names::client_label(&job.cluster), "true".to_owned());
    let mut env_vars = runner_env(job, attempt);
    env_vars.extend(runner.env.iter().cloned());
    let pull_policy = runner
        .image_pull_policy
        .unwrap_or(job.spec.cluster.image_pull_policy);
    let (scratch, scratch_mount) = build::scratch();
    // The cluster's hardening, except that user code may write to its root filesystem.
    let security = SecurityContext {
        read_only_root_filesystem: None,
        ..build::container_security()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(names::job_runner_pod(&job.name, attempt)),
            namespace: Some(job.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![job.owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: RUNNER_CONTAINER.to_owned(),
                image: Some(job.runner_image()),
                image_pull_policy: Some(pull_policy.as_str().to_owned()),
                command: Some(runner.command.clone()),
                args: (!runner.args.is_empty()).then(|| runner.args.clone()),
                env: Some(env_vars),
                resources: runner.resources.clone(),
                security_context: Some(security),
                volume_mounts: Some(vec![scratch_mount]),
                ..Container::default()
            }],
            volumes: Some(vec![scratch]),
            restart_policy: Some("Never".to_owned()),
            security_context: Some(build::pod_security()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::defaults;
    use crate::job::fixtures::job;

    fn resolved() -> ResolvedJob {
        crate::job::fixtures::resolved(|_| {})
    }

    fn env_of(pod: &Pod) -> Vec<EnvVar> {
        pod.spec
            .iter()
            .flat_map(|s| s.containers[0].env.iter().flatten())
            .cloned()
            .collect()
    }

    /// The cluster and the runner pods are controlled by the job, so deleting the job
    /// deletes them.
    #[test]
    fn cluster_and_runner_are_controlled_by_the_job() {
        let job = resolved();
        let cluster = cluster(&job);
        let pod = runner_pod(&job, 1);
        for meta in [&cluster.metadata, &pod.metadata] {
            let owners = meta.owner_references.clone().unwrap_or_default();
            assert_eq!(owners.len(), 1, "{owners:?}");
            assert_eq!(
                (owners[0].kind.as_str(), owners[0].uid.as_str()),
                ("ShoalJob", "uid-nightly")
            );
            assert_eq!(owners[0].controller, Some(true));
            assert_eq!(
                meta.labels.as_ref().map(|l| l[names::LABEL_JOB].as_str()),
                Some("nightly")
            );
        }
        assert_eq!(cluster.metadata.name.as_deref(), Some("nightly-cluster"));
        assert_eq!(pod.metadata.name.as_deref(), Some("nightly-runner-1"));
    }

    /// The cluster pins the version the runner's default image has.
    #[test]
    fn cluster_version_and_runner_image_agree() {
        let job = resolved();
        let cluster = cluster(&job);
        assert_eq!(cluster.spec.version.as_deref(), Some("0.3.0"));
        assert_eq!(cluster.spec.image.as_deref(), Some(names::DEFAULT_IMAGE));
        assert_eq!(cluster.spec.workers.replicas, 1, "the template is kept");
        let pod = runner_pod(&job, 2);
        let container = &pod.spec.as_ref().map(|s| s.containers[0].clone());
        assert_eq!(
            container.as_ref().and_then(|c| c.image.clone()).as_deref(),
            Some("shoal.dev/shoal:0.3.0")
        );
        let mut own = job.clone();
        own.spec.runner.image = Some("example.com/mine:1".to_owned());
        let pod = runner_pod(&own, 1);
        assert_eq!(
            pod.spec
                .and_then(|s| s.containers[0].image.clone())
                .as_deref(),
            Some("example.com/mine:1")
        );
    }

    /// The runner finds the scheduler and the token from its environment, the token by
    /// reference to the cluster's Secret; the user's env comes after (and wins).
    #[test]
    fn runner_env_points_at_the_cluster() {
        let pod = runner_pod(&resolved(), 1);
        let env = env_of(&pod);
        let value = |name: &str| {
            env.iter()
                .find(|e| e.name == name)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(
            value("SHOAL_SCHEDULER_ADDRESS").as_deref(),
            Some("nightly-cluster-scheduler.ns.svc:8786")
        );
        assert_eq!(value("SHOAL_CLUSTER").as_deref(), Some("nightly-cluster"));
        assert_eq!(value("SHOAL_JOB_ATTEMPT").as_deref(), Some("1"));
        let token = env
            .iter()
            .find(|e| e.name == "SHOAL_TOKEN")
            .and_then(|e| e.value_from.clone())
            .and_then(|v| v.secret_key_ref);
        assert_eq!(
            token.map(|s| (s.name, s.key)),
            Some(("nightly-cluster-token".to_owned(), "token".to_owned()))
        );
        assert_eq!(env.last().map(|e| e.name.as_str()), Some("A"));
    }

    /// A template naming its own token Secret gives the runner that Secret.
    #[test]
    fn runner_reads_the_templates_token_secret() {
        let mut job = job("nightly");
        job.spec.cluster.token_secret = Some("mine".to_owned());
        let resolved = resolve(&job, &defaults("0.3.0")).unwrap_or_else(|e| unreachable!("{e}"));
        let env = env_of(&runner_pod(&resolved, 1));
        let secret = env
            .iter()
            .find_map(|e| e.value_from.clone()?.secret_key_ref)
            .map(|s| s.name);
        assert_eq!(secret.as_deref(), Some("mine"));
    }

    /// The runner may reach the scheduler through the cluster's NetworkPolicy, never
    /// restarts in place, and runs hardened.
    #[test]
    fn runner_is_a_hardened_client_that_never_restarts() {
        let pod = runner_pod(&resolved(), 1);
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels
                .get("client.shoal.dev/nightly-cluster")
                .map(String::as_str),
            Some("true")
        );
        assert_eq!(labels[names::LABEL_COMPONENT], "runner");
        assert!(
            !labels.contains_key(names::LABEL_CLUSTER),
            "not one of the cluster's own pods"
        );
        let spec = pod.spec.unwrap_or_default();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.automount_service_account_token, Some(false));
        let pod_security = spec.security_context.unwrap_or_default();
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(
            pod_security.seccomp_profile.map(|s| s.type_).as_deref(),
            Some("RuntimeDefault")
        );
        let security = spec.containers[0]
            .security_context
            .clone()
            .unwrap_or_default();
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(
            security.capabilities.and_then(|c| c.drop),
            Some(vec!["ALL".to_owned()])
        );
        assert_eq!(
            spec.containers[0].command,
            Some(vec!["python3".into(), "-c".into(), "print(1)".into()])
        );
    }
}
