//! Stage 4, needs the client: the scheduler told why lost workers' pods ended (with a
//! short timeout: it never holds up the rest), server-side apply of what `build`/`plan`
//! decided (with the cluster's NetworkPolicy, or its deletion when they are off),
//! deletes by name with a uid precondition (never a pod that replaced the one
//! planned on), and retirement through the scheduler before a running worker's pod
//! goes: only the workers the scheduler answers as retired are deleted. What was done
//! is recorded in an `Outcome` (Events are built from it elsewhere); no decisions are
//! made here.

use super::losses::{Loss, Running};
use super::network::Settings;
use super::observe;
use super::plan::{DeleteReason, Deletion, Plan};
use super::validate::ValidatedCluster;
use super::{Context, Error};
use crate::names;
use crate::scheduler_api::LostWorker;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

/// How long the scheduler may take to move a retiring worker's data.
pub const RETIRE_DEADLINE: Duration = Duration::from_secs(60);

/// How long the scheduler may take to answer `ReportWorkerLost`. A stuck scheduler must
/// not hold up the reconcile: the Event then goes out without the task list.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(3);

/// What the apply stage did, as far as it got.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// Pods deleted, in order (plan deletions, then retired workers).
    pub deleted: Vec<Deletion>,
    /// Pods created (by name).
    pub created: Vec<String>,
    /// Workers the scheduler retired (their pods are deleted).
    pub retired: Vec<String>,
    /// Workers the scheduler refused to retire, with why (they stay).
    pub refused: BTreeMap<String, String>,
    /// Why retirement could not be asked for (scale-down waits).
    pub retire_error: Option<String>,
    /// What the scheduler said each lost worker (by pod name) was running.
    pub running: BTreeMap<String, Running>,
}

/// Carries out `plan`: the report of `losses` to the scheduler, the Service, deletions,
/// creations, retirement and the deletion of retired workers. `outcome` records each
/// step done, also when a later one fails.
pub async fn carry_out(
    ctx: &Context,
    cluster: &ValidatedCluster,
    token: &str,
    pods: &[Pod],
    plan: &Plan,
    losses: &[Loss],
    outcome: &mut Outcome,
) -> Result<(), Error> {
    outcome.running = report_lost(cluster, token, pods, losses).await;
    apply_service(ctx, cluster).await?;
    apply_network_policy(ctx, cluster).await?;
    for deletion in &plan.delete {
        delete_pod(ctx, &cluster.namespace, pods, deletion).await?;
        outcome.deleted.push(deletion.clone());
    }
    for pod in &plan.create {
        apply(ctx, &cluster.namespace, pod).await?;
        outcome.created.push(pod.name_any());
    }
    match retire(cluster, token, plan).await {
        Ok(retirement) => {
            outcome.refused = retirement.refused.into_iter().collect();
            outcome.retired = retirement.retired;
        }
        Err(error) => outcome.retire_error = Some(super::describe(&error)),
    }
    for name in outcome.retired.clone() {
        // Only names this plan sent: the answer cannot make the operator delete others.
        if !plan.retire.contains(&name) {
            continue;
        }
        let deletion = Deletion {
            name,
            reason: DeleteReason::Retired,
            detail: "its data moved to other workers".to_owned(),
        };
        delete_pod(ctx, &cluster.namespace, pods, &deletion).await?;
        outcome.deleted.push(deletion);
    }
    Ok(())
}

/// Tells the scheduler why each lost worker's pod ended; returns what each was running.
/// Never fails: an unready or unreachable scheduler is logged and noted per worker.
pub async fn report_lost(
    cluster: &ValidatedCluster,
    token: &str,
    pods: &[Pod],
    losses: &[Loss],
) -> BTreeMap<String, Running> {
    let workers: Vec<LostWorker> = losses
        .iter()
        .filter(|l| l.group.is_some())
        .map(|l| LostWorker {
            name: l.pod.clone(),
            reason: l.describe(),
            cause: l.cause,
            memory_limit: l.memory_bytes().unwrap_or(0),
        })
        .collect();
    if workers.is_empty() {
        return BTreeMap::new();
    }
    let answers = if observe::scheduler_ready(pods, &cluster.version) {
        crate::scheduler_api::report_lost(
            &cluster.scheduler_address(),
            token,
            &workers,
            REPORT_TIMEOUT,
        )
        .await
        .map_err(|error| super::describe(&error))
    } else {
        Err("its pod is not ready".to_owned())
    };
    let answers: Vec<Running> = match answers {
        Ok(answers) => answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|error| Running::Unreachable(super::describe(&error))))
            .collect(),
        Err(why) => vec![Running::Unreachable(why); workers.len()],
    };
    workers
        .into_iter()
        .zip(answers)
        .map(|(worker, running)| {
            if let Running::Unreachable(why) = &running {
                tracing::warn!(
                    cluster = %cluster.name,
                    pod = %worker.name,
                    cause = <&str>::from(worker.cause),
                    error = %why,
                    "telling the scheduler why a worker's pod ended failed; the Event goes out without its tasks",
                );
            }
            (worker.name, running)
        })
        .collect()
}

fn apply_params() -> PatchParams {
    PatchParams::apply(names::MANAGER).force()
}

/// Server-side apply of one namespaced object.
pub async fn apply<K>(ctx: &Context, namespace: &str, object: &K) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    Api::<K>::namespaced(ctx.client.clone(), namespace)
        .patch(&name, &apply_params(), &Patch::Apply(object))
        .await
        .map_err(|source| Error::Apply {
            kind: K::kind(&()).into_owned(),
            name,
            source: Box::new(source),
        })?;
    Ok(())
}

/// The token Secret: created once with a fresh random token, never rewritten.
pub async fn ensure_token(
    ctx: &Context,
    cluster: &ValidatedCluster,
    existing: Option<String>,
) -> Result<String, Error> {
    if let Some(token) = existing {
        return Ok(token);
    }
    if !cluster.owns_token_secret {
        return Err(Error::MissingTokenSecret {
            cluster: cluster.name.clone(),
            secret: cluster.token_secret.clone(),
        });
    }
    let token = new_token();
    let secret: Secret = super::build::token_secret(cluster, &token);
    apply(ctx, &cluster.namespace, &secret).await?;
    Ok(token)
}

/// 32 random bytes, hex encoded.
fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn apply_service(ctx: &Context, cluster: &ValidatedCluster) -> Result<(), Error> {
    let service: Service = super::build::scheduler_service(cluster);
    apply(ctx, &cluster.namespace, &service).await
}

/// The cluster's NetworkPolicy, before its scheduler pod exists (so the pod is never
/// open). Disabled: a policy this cluster controls (left from before) is deleted; one
/// of the same name that it does not control is left alone.
pub async fn apply_network_policy(ctx: &Context, cluster: &ValidatedCluster) -> Result<(), Error> {
    let operator = match &ctx.network {
        Settings::Enabled(operator) => operator,
        Settings::Disabled => return delete_network_policy(ctx, cluster).await,
    };
    let policy: NetworkPolicy = super::network::scheduler_policy(cluster, operator);
    apply(ctx, &cluster.namespace, &policy).await
}

async fn delete_network_policy(ctx: &Context, cluster: &ValidatedCluster) -> Result<(), Error> {
    let name = names::scheduler_network_policy(&cluster.name);
    let api = Api::<NetworkPolicy>::namespaced(ctx.client.clone(), &cluster.namespace);
    let failed = |source| Error::DeleteObject {
        kind: "NetworkPolicy",
        name: name.clone(),
        source: Box::new(source),
    };
    let Some(existing) = api.get_opt(&name).await.map_err(failed)? else {
        return Ok(());
    };
    let uid = existing.metadata.uid.clone();
    let controlled = existing
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == cluster.owner.uid);
    if !controlled {
        return Ok(());
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(source) => Err(failed(source)),
    }
}

/// Deletes one pod by name, only if it is still the pod that was observed.
pub async fn delete_pod(
    ctx: &Context,
    namespace: &str,
    pods: &[Pod],
    deletion: &Deletion,
) -> Result<(), Error> {
    let uid = pods
        .iter()
        .find(|p| p.name_any() == deletion.name)
        .and_then(|p| p.metadata.uid.clone());
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match Api::<Pod>::namespaced(ctx.client.clone(), namespace)
        .delete(&deletion.name, &params)
        .await
    {
        Ok(_) => Ok(()),
        // Already gone, or replaced since it was read: nothing to do.
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(source) => Err(Error::Delete {
            name: deletion.name.clone(),
            source: Box::new(source),
        }),
    }
}

/// Asks the scheduler to retire the planned workers; returns what it answered. While
/// the scheduler is unreachable nothing is retired (no scale-down without it).
pub async fn retire(
    cluster: &ValidatedCluster,
    token: &str,
    plan: &Plan,
) -> Result<crate::scheduler_api::Retirement, Error> {
    if plan.retire.is_empty() {
        return Ok(crate::scheduler_api::Retirement {
            retired: Vec::new(),
            refused: std::collections::HashMap::new(),
        });
    }
    // The scheduler's Service, by in-cluster DNS.
    let address = cluster.scheduler_address();
    let retirement =
        crate::scheduler_api::retire(&address, token, plan.retire.clone(), RETIRE_DEADLINE)
            .await
            .map_err(|source| Error::Retire {
                cluster: cluster.name.clone(),
                source: Box::new(source),
            })?;
    for (worker, why) in &retirement.refused {
        tracing::warn!(cluster = %cluster.name, worker = %worker, reason = %why, "the scheduler refused to retire a worker; it stays");
    }
    Ok(retirement)
}
