//! Stage 4, needs the client: server-side apply of what `build`/`plan` decided, deletes
//! by name with a uid precondition (never a pod that replaced the one planned on), and
//! retirement through the scheduler before a running worker's pod goes.

use super::plan::{Deletion, Plan};
use super::validate::ValidatedCluster;
use super::{Context, Error};
use crate::names;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::time::Duration;

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

/// Creates the planned pods (server-side apply: a repeat after a restart is a no-op).
pub async fn create_pods(
    ctx: &Context,
    cluster: &ValidatedCluster,
    plan: &Plan,
) -> Result<(), Error> {
    for pod in &plan.create {
        apply(ctx, &cluster.namespace, pod).await?;
    }
    Ok(())
}

/// Asks the scheduler to retire the planned workers; returns those it retired. While
/// the scheduler is unreachable nothing is retired (no scale-down without it).
pub async fn retire(
    cluster: &ValidatedCluster,
    token: &str,
    plan: &Plan,
) -> Result<Vec<String>, Error> {
    if plan.retire.is_empty() {
        return Ok(Vec::new());
    }
    // The scheduler's Service, by in-cluster DNS.
    let address = cluster.scheduler_address();
    let retirement = crate::scheduler_api::retire(
        &address,
        token,
        plan.retire.clone(),
        Duration::from_secs(20),
    )
    .await
    .map_err(|source| Error::Retire {
        cluster: cluster.name.clone(),
        source: Box::new(source),
    })?;
    for (worker, why) in &retirement.refused {
        tracing::warn!(cluster = %cluster.name, worker = %worker, reason = %why, "the scheduler refused to retire a worker; it stays");
    }
    Ok(retirement.retired)
}
