//! Stage 2, pure: checks what the API server's schema cannot (names that would be too
//! long, group names that clash, a missing namespace) and resolves defaults into a
//! `ValidatedCluster`, the only input the builders accept. No client, no clock.

use super::memory;
use crate::crd::{
    ImagePullPolicy, ShoalCluster, ShoalWorkerGroup, UpgradeStrategy, WorkerPoolSpec,
};
use crate::names;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;

/// Longest pod name the operator creates: pod host names are DNS labels (63 characters).
const MAX_POD_NAME: usize = 63;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ValidateError {
    #[error("the ShoalCluster has no {field}; it was not read from the API server")]
    MissingMetadata { field: &'static str },
    #[error(
        "worker pod name {pod:?} would be {len} characters, over the limit of {MAX_POD_NAME}; \
         use a shorter cluster or worker group name"
    )]
    NameTooLong { pod: String, len: usize },
    #[error(
        "ShoalWorkerGroup {group:?} clashes with the cluster's default worker group; rename it"
    )]
    GroupNameClash { group: String },
    #[error(
        "worker group {group:?} offers task resource {resource:?} = {amount}; names must be \
         non-empty without `=`, `,` or spaces, and amounts positive numbers"
    )]
    BadTaskResource {
        group: String,
        resource: String,
        amount: f64,
    },
    #[error("worker group {group:?} has an unusable oomPolicy: {why}")]
    BadOomPolicy { group: String, why: String },
}

/// One worker group, ready to build pods from.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedGroup {
    pub name: String,
    pub pool: WorkerPoolSpec,
}

/// A `ShoalCluster` with its worker groups, checked and with defaults resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedCluster {
    pub name: String,
    pub namespace: String,
    pub generation: Option<i64>,
    pub owner: OwnerReference,
    pub version: String,
    pub image_repository: String,
    pub pull_policy: ImagePullPolicy,
    pub upgrade_strategy: UpgradeStrategy,
    pub scheduler_resources: Option<ResourceRequirements>,
    pub heartbeat_timeout_seconds: i32,
    pub token_secret: String,
    /// True when the operator owns (and creates) the token Secret.
    pub owns_token_secret: bool,
    /// The default group first, then the worker groups by name.
    pub groups: Vec<ValidatedGroup>,
}

impl ValidatedCluster {
    /// The image by tag; workers use the scheduler's digest once it is known.
    pub fn image_by_tag(&self) -> String {
        format!("{}:{}", self.image_repository, self.version)
    }

    /// `host:port` of the scheduler inside the Kubernetes cluster.
    pub fn scheduler_address(&self) -> String {
        format!(
            "{}.{}.svc:{}",
            names::scheduler_service(&self.name),
            self.namespace,
            names::SCHEDULER_PORT
        )
    }
}

/// What a cluster gets when its spec names no version or image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// The operator's own version (never `latest`).
    pub version: String,
    /// The image repository, without a tag.
    pub image: String,
}

/// The Secret holding a cluster's token: `spec.tokenSecret`, or `<cluster>-token`.
pub fn token_secret_name(cluster: &ShoalCluster) -> String {
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    cluster
        .spec
        .token_secret
        .clone()
        .unwrap_or_else(|| names::token_secret(name))
}

/// Validates a cluster and the worker groups attached to it.
pub fn validate(
    cluster: &ShoalCluster,
    groups: &[ShoalWorkerGroup],
    defaults: &Defaults,
) -> Result<ValidatedCluster, ValidateError> {
    let meta = &cluster.metadata;
    let name = meta
        .name
        .clone()
        .ok_or(ValidateError::MissingMetadata { field: "name" })?;
    let namespace = meta
        .namespace
        .clone()
        .ok_or(ValidateError::MissingMetadata { field: "namespace" })?;
    let owner = cluster
        .controller_owner_ref(&())
        .ok_or(ValidateError::MissingMetadata { field: "uid" })?;
    let spec = &cluster.spec;

    let mut validated_groups = vec![ValidatedGroup {
        name: names::DEFAULT_GROUP.to_owned(),
        pool: spec.workers.clone(),
    }];
    let mut attached: Vec<&ShoalWorkerGroup> =
        groups.iter().filter(|g| g.spec.cluster == name).collect();
    attached.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for group in attached {
        let group_name = group
            .metadata
            .name
            .clone()
            .ok_or(ValidateError::MissingMetadata {
                field: "worker group name",
            })?;
        if group_name == names::DEFAULT_GROUP {
            return Err(ValidateError::GroupNameClash { group: group_name });
        }
        validated_groups.push(ValidatedGroup {
            name: group_name,
            pool: group.spec.workers.clone(),
        });
    }
    for group in &validated_groups {
        for (resource, amount) in &group.pool.task_resources {
            let bad_name = resource.is_empty()
                || resource.contains(['=', ','])
                || resource.contains(char::is_whitespace);
            if bad_name || !amount.is_finite() || *amount <= 0.0 {
                return Err(ValidateError::BadTaskResource {
                    group: group.name.clone(),
                    resource: resource.clone(),
                    amount: *amount,
                });
            }
        }
        check_oom_policy(group)?;
        // Holes left by retired workers push new pods to higher indices: allow twice max.
        let widest = names::worker_pod(&name, &group.name, group.pool.max_replicas.max(1) * 2);
        if widest.len() > MAX_POD_NAME {
            return Err(ValidateError::NameTooLong {
                len: widest.len(),
                pod: widest,
            });
        }
    }

    Ok(ValidatedCluster {
        generation: meta.generation,
        owner,
        version: spec
            .version
            .clone()
            .unwrap_or_else(|| defaults.version.clone()),
        image_repository: spec.image.clone().unwrap_or_else(|| defaults.image.clone()),
        pull_policy: spec.image_pull_policy,
        upgrade_strategy: spec.upgrade_strategy,
        scheduler_resources: spec.scheduler.resources.clone(),
        heartbeat_timeout_seconds: spec.scheduler.heartbeat_timeout_seconds,
        owns_token_secret: spec.token_secret.is_none(),
        token_secret: token_secret_name(cluster),
        groups: validated_groups,
        name,
        namespace,
    })
}

/// What the schema's rules say about `oomPolicy`, and what they cannot: a memory limit
/// to raise, and a maximum not below it.
fn check_oom_policy(group: &ValidatedGroup) -> Result<(), ValidateError> {
    let Some(policy) = &group.pool.oom_policy else {
        return Ok(());
    };
    let bad = |why: String| ValidateError::BadOomPolicy {
        group: group.name.clone(),
        why,
    };
    let factor = policy.increase_factor;
    if !(factor > 1.0 && factor <= 10.0) {
        return Err(bad(format!(
            "increaseFactor is {factor}; it must be above 1 and at most 10 (e.g. 1.5)"
        )));
    }
    let Some(max) = memory::bytes(&policy.max_memory).filter(|m| *m > 0) else {
        return Err(bad(format!(
            "maxMemory {:?} is not a positive memory quantity; write it like 4Gi",
            policy.max_memory
        )));
    };
    let Some(limit) = memory::spec_limit(group) else {
        return Err(bad(
            "it raises the workers' memory limit, but they have none: set \
             resources.limits.memory next to oomPolicy"
                .to_owned(),
        ));
    };
    if max < limit {
        return Err(bad(format!(
            "maxMemory {} is below the workers' memory limit {}; raise maxMemory",
            policy.max_memory,
            memory::format(limit)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{cluster, defaults, worker_group};

    /// Defaults resolve: the operator's version, the default repository, an owned token Secret.
    #[test]
    fn defaults_are_resolved() {
        let validated = validate(&cluster("demo"), &[], &defaults("1.2.3")).expect("valid");
        assert_eq!(validated.version, "1.2.3");
        assert_eq!(validated.image_by_tag(), "shoal.dev/shoal:1.2.3");
        assert_eq!(validated.token_secret, "demo-token");
        assert!(validated.owns_token_secret);
        assert_eq!(validated.scheduler_address(), "demo-scheduler.ns.svc:8786");
        assert_eq!(validated.groups.len(), 1);
    }

    /// Worker groups attach only to the cluster they name, in name order after the default.
    #[test]
    fn groups_attach_by_cluster_name() {
        let groups = [
            worker_group("gpu", "demo"),
            worker_group("big", "demo"),
            worker_group("x", "other"),
        ];
        let validated = validate(&cluster("demo"), &groups, &defaults("1.2.3")).expect("valid");
        let names: Vec<&str> = validated.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["default", "big", "gpu"]);
    }

    /// A worker group named like the default group is refused with the fix.
    #[test]
    fn default_group_name_clash_is_refused() {
        let err = validate(
            &cluster("demo"),
            &[worker_group("default", "demo")],
            &defaults("1.0.0"),
        )
        .expect_err("must clash");
        assert!(err.to_string().contains("rename it"), "{err}");
    }

    /// Task resources that the worker's `k=v,k=v` flag could not carry are refused.
    #[test]
    fn bad_task_resources_are_refused() {
        let mut c = cluster("demo");
        c.spec.workers.task_resources.insert("a=b".to_owned(), 1.0);
        let err = validate(&c, &[], &defaults("1.0.0")).expect_err("bad name");
        assert!(
            matches!(err, ValidateError::BadTaskResource { .. }),
            "{err}"
        );
        c.spec.workers.task_resources.clear();
        c.spec.workers.task_resources.insert("gpu".to_owned(), 0.0);
        assert!(validate(&c, &[], &defaults("1.0.0")).is_err());
    }

    /// An oomPolicy without a limit to raise, with a maximum below the limit, an
    /// unreadable maximum or a factor out of range is refused, naming the group and why.
    #[test]
    fn unusable_oom_policies_are_refused() {
        use crate::crd::OomPolicy;
        use crate::fixtures::memory;
        let attempt = |limit: Option<&str>, factor: f64, max: &str| {
            let mut c = cluster("demo");
            c.spec.workers.resources = limit.map(|l| memory(l, None));
            c.spec.workers.oom_policy = Some(OomPolicy {
                increase_factor: factor,
                max_memory: max.to_owned(),
            });
            validate(&c, &[], &defaults("1.0.0"))
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert_eq!(attempt(Some("256Mi"), 1.5, "4Gi"), Ok(()));
        let errors = [
            attempt(None, 1.5, "4Gi"),
            attempt(Some("8Gi"), 1.5, "4Gi"),
            attempt(Some("256Mi"), 1.5, "four"),
            attempt(Some("256Mi"), 1.0, "4Gi"),
            attempt(Some("256Mi"), 11.0, "4Gi"),
        ];
        for (error, needle) in errors.iter().zip([
            "set resources.limits.memory",
            "maxMemory 4Gi is below the workers' memory limit 8Gi",
            "write it like 4Gi",
            "above 1 and at most 10",
            "above 1 and at most 10",
        ]) {
            let text = error.clone().err().unwrap_or_default();
            assert!(
                text.contains("worker group \"default\"") && text.contains(needle),
                "{text}"
            );
        }
    }

    /// Every cluster name validation accepts makes a valid client label key
    /// (`client.shoal.dev/<c>`: its name part is at most 63 characters): longer names are
    /// refused first, for the pod names, saying to use a shorter name.
    #[test]
    fn accepted_names_make_valid_client_labels() {
        use crate::reconcile::network::valid_label_key;
        for len in 1..=80 {
            let name = "c".repeat(len);
            match validate(&cluster(&name), &[], &defaults("1.0.0")) {
                Ok(_) => assert!(valid_label_key(&names::client_label(&name)), "{len}"),
                Err(e) => assert!(e.to_string().contains("shorter cluster"), "{e}"),
            }
        }
    }

    /// Pod names that could not be host names are refused before anything is created.
    #[test]
    fn overlong_names_are_refused() {
        let long = "c".repeat(50);
        let err = validate(&cluster(&long), &[], &defaults("1.0.0")).expect_err("too long");
        assert!(matches!(err, ValidateError::NameTooLong { .. }), "{err}");
    }
}
