//! Reconciling one `ShoalJob` as stages: read (client: the job afresh, its cluster, its
//! runner pods) → resolve and observe (pure) → plan (pure; when it quotes a runner's log
//! tail, the tail is read through the pods/log API and the plan made again) → carry out
//! (client: creations, then the status that counts them, the Events, then the deletions
//! the status explains) → metrics. `controller` wires it into a kube-runtime Controller
//! next to the cluster's, sharing its `Context`.

pub mod build;
pub mod controller;
pub mod observe;
pub mod plan;

#[cfg(test)]
pub(crate) mod fixtures;

use crate::crd::{ShoalCluster, ShoalJob, ShoalJobStatus};
use crate::names;
use crate::reconcile::Context;
use build::ResolvedJob;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, Preconditions,
};
use kube::runtime::controller::Action as Requeue;
use kube::{Api, Resource, ResourceExt};
use plan::{Action, Logs, Observed, Plan};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

/// Bytes of log read at most for a tail (the plan keeps `plan::LOG_BYTES` of them).
const LOG_READ_BYTES: i64 = 64 * 1024;

#[derive(Debug, thiserror::Error, strum::IntoStaticStr)]
pub enum Error {
    #[error(transparent)]
    Metadata(#[from] build::MissingMetadata),
    #[error("reading the {what} of job {namespace}/{job} failed")]
    Read {
        what: &'static str,
        job: String,
        namespace: String,
        source: Box<kube::Error>,
    },
    #[error("creating {kind} {name} failed")]
    Create {
        kind: &'static str,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("deleting {kind} {name} failed")]
    Delete {
        kind: &'static str,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("writing the status of job {name} failed")]
    Status {
        name: String,
        source: Box<kube::Error>,
    },
}

impl Error {
    /// A bounded label for metrics: the variant name, never names or error text.
    pub fn category(&self) -> &'static str {
        self.into()
    }
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// Reconciles one job. Its pods and cluster re-trigger it; the plan says when to look
/// again otherwise (deadline, backoff, TTL).
pub async fn reconcile(job: Arc<ShoalJob>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let result = reconcile_inner(&job, &ctx).await;
    ctx.metrics
        .job_reconciled(result.as_ref().err().map(Error::category));
    result
}

async fn reconcile_inner(cached: &ShoalJob, ctx: &Context) -> Result<Requeue, Error> {
    // Read afresh: the cache may not show the status this operator wrote a moment ago,
    // and a finished job must never look unfinished (it would make a new cluster).
    let namespace = cached.namespace().unwrap_or_default();
    let jobs = Api::<ShoalJob>::namespaced(ctx.client.clone(), &namespace);
    let read_failed = |what: &'static str| {
        let (job, namespace) = (cached.name_any(), namespace.clone());
        move |source| Error::Read {
            what,
            job,
            namespace,
            source: Box::new(source),
        }
    };
    let Some(job) = jobs
        .get_opt(&cached.name_any())
        .await
        .map_err(read_failed("job"))?
    else {
        return Ok(Requeue::await_change());
    };
    if job.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the cluster and the pods.
        return Ok(Requeue::await_change());
    }
    let resolved = build::resolve(&job, &ctx.defaults)?;
    let uid = resolved.owner.uid.clone();
    let cluster = Api::<ShoalCluster>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&resolved.cluster)
        .await
        .map_err(read_failed("cluster"))?
        .map(|c| observe::cluster(&c, &uid));
    let runners = Api::<Pod>::namespaced(ctx.client.clone(), &namespace)
        .list(&ListParams::default().labels(&names::job_selector(&resolved.name)))
        .await
        .map_err(read_failed("runner pods"))?
        .items
        .iter()
        .filter(|p| observe::controlled_by(p.metadata.owner_references.as_ref(), &uid))
        .filter_map(observe::runner)
        .collect();
    let mut observed = Observed {
        cluster,
        runners,
        logs: None,
        now: now(),
    };
    let mut plan = plan::plan(&resolved, job.status.as_ref(), &observed);
    if let Some(pod) = plan.wants_logs.clone() {
        observed.logs = Some(Logs {
            tail: log_tail(ctx, &namespace, &pod).await,
            pod,
        });
        plan = plan::plan(&resolved, job.status.as_ref(), &observed);
    }
    carry_out(ctx, &job, &resolved, &plan).await?;
    Ok(plan
        .requeue
        .map_or_else(Requeue::await_change, Requeue::requeue))
}

/// The last lines of the runner's log (bounded), or why they could not be read.
async fn log_tail(ctx: &Context, namespace: &str, pod: &str) -> Result<String, String> {
    let params = LogParams {
        container: Some(build::RUNNER_CONTAINER.to_owned()),
        tail_lines: Some(i64::try_from(plan::LOG_LINES).unwrap_or(20)),
        limit_bytes: Some(LOG_READ_BYTES),
        ..LogParams::default()
    };
    Api::<Pod>::namespaced(ctx.client.clone(), namespace)
        .logs(pod, &params)
        .await
        .map_err(|error| crate::reconcile::describe(&error))
}

/// Creations, the status, the Events, then deletions; metrics once the status is written.
async fn carry_out(
    ctx: &Context,
    job: &ShoalJob,
    resolved: &ResolvedJob,
    plan: &Plan,
) -> Result<(), Error> {
    for action in plan.actions.iter().filter(|a| a.creates()) {
        act(ctx, job, resolved, action).await?;
    }
    write_status(ctx, job, &plan.status).await?;
    if let Some(reason) = plan.finished {
        ctx.metrics.job_finished(&resolved.namespace, reason);
        tracing::info!(job = %resolved.name, namespace = %resolved.namespace, reason, "job finished");
    }
    for note in &plan.notes {
        crate::reconcile::publish(ctx, job, note).await;
    }
    for action in plan.actions.iter().filter(|a| !a.creates()) {
        act(ctx, job, resolved, action).await?;
    }
    Ok(())
}

async fn act(
    ctx: &Context,
    job: &ShoalJob,
    resolved: &ResolvedJob,
    action: &Action,
) -> Result<(), Error> {
    let ns = resolved.namespace.as_str();
    match action {
        Action::CreateCluster => create(ctx, ns, &build::cluster(resolved)).await,
        Action::CreateRunner { attempt } => {
            create(ctx, ns, &build::runner_pod(resolved, *attempt)).await
        }
        Action::DeleteRunner { name, uid } => delete::<Pod>(ctx, ns, name, uid.clone()).await,
        Action::DeleteCluster { uid } => {
            delete::<ShoalCluster>(ctx, ns, &resolved.cluster, uid.clone()).await
        }
        Action::DeleteJob => {
            tracing::info!(job = %resolved.name, namespace = ns, "ttlSecondsAfterFinished passed: deleting the job");
            delete::<ShoalJob>(ctx, ns, &resolved.name, job.metadata.uid.clone()).await
        }
    }
}

/// Creates an object; one that exists already (an earlier reconcile made it) is fine.
async fn create<K>(ctx: &Context, namespace: &str, object: &K) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    match Api::<K>::namespaced(ctx.client.clone(), namespace)
        .create(&PostParams::default(), object)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(source) => Err(Error::Create {
            kind: kind_of::<K>(),
            name,
            source: Box::new(source),
        }),
    }
}

fn kind_of<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "Pod" => "Pod",
        "ShoalCluster" => "ShoalCluster",
        "ShoalJob" => "ShoalJob",
        _ => "object",
    }
}

/// Deletes by name, only the object that was read (`uid`); gone already is fine.
async fn delete<K>(
    ctx: &Context,
    namespace: &str,
    name: &str,
    uid: Option<String>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match Api::<K>::namespaced(ctx.client.clone(), namespace)
        .delete(name, &params)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(source) => Err(Error::Delete {
            kind: kind_of::<K>(),
            name: name.to_owned(),
            source: Box::new(source),
        }),
    }
}

/// Server-side apply of the whole status by the operator's field manager: a field the
/// plan left unset is removed, not kept from before.
async fn write_status(ctx: &Context, job: &ShoalJob, status: &ShoalJobStatus) -> Result<(), Error> {
    if job.status.as_ref() == Some(status) {
        return Ok(());
    }
    let name = job.name_any();
    let patch = serde_json::json!({
        "apiVersion": ShoalJob::api_version(&()),
        "kind": ShoalJob::kind(&()),
        "status": status,
    });
    Api::<ShoalJob>::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default())
        .patch_status(
            &name,
            &PatchParams::apply(names::MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| Error::Status {
            name,
            source: Box::new(source),
        })?;
    Ok(())
}

/// On error: log with the category and cause chain, retry with a short delay.
pub fn error_policy(job: Arc<ShoalJob>, error: &Error, _ctx: Arc<Context>) -> Requeue {
    tracing::warn!(
        job = %job.name_any(),
        namespace = %job.namespace().unwrap_or_default(),
        category = error.category(),
        cause = %crate::reconcile::describe(error),
        "job reconcile failed"
    );
    Requeue::requeue(Duration::from_secs(5))
}
