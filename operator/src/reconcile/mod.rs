//! Reconciling one `ShoalCluster` (and the `ShoalWorkerGroup`s attached to it) as named
//! stages: read (client) → validate (pure) → plan + build (pure) → apply (client) →
//! status (pure, then written by the client). Events report every notable change.

pub mod apply;
pub mod build;
pub mod observe;
pub mod plan;
pub mod read;
pub mod status;
pub mod validate;

#[cfg(test)]
mod api_tests;

use crate::crd::{ShoalCluster, ShoalClusterStatus, ShoalWorkerGroup, ShoalWorkerGroupStatus};
use crate::metrics::Metrics;
use crate::names;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use plan::DeleteReason;
use std::sync::Arc;
use std::time::{Duration, Instant};
use validate::ValidatedCluster;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// The version and image clusters get when they name none.
    pub defaults: validate::Defaults,
}

#[derive(Debug, thiserror::Error, strum::IntoStaticStr)]
pub enum Error {
    #[error(transparent)]
    Read(#[from] Box<read::ReadError>),
    #[error(
        "the token Secret {secret} of cluster {cluster} does not exist; create it with the key \
         `token`, or remove spec.tokenSecret so the operator makes one"
    )]
    MissingTokenSecret { cluster: String, secret: String },
    #[error("server-side apply of {kind} {name} failed")]
    Apply {
        kind: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("deleting pod {name} failed")]
    Delete {
        name: String,
        source: Box<kube::Error>,
    },
    #[error(
        "retiring workers of cluster {cluster} through its scheduler failed (scale-down waits)"
    )]
    Retire {
        cluster: String,
        source: Box<crate::scheduler_api::SchedulerApiError>,
    },
    #[error("writing the status of {kind} {name} failed")]
    Status {
        kind: &'static str,
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

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// Reconciles one cluster. Pod events re-trigger it; it also looks again every minute,
/// and sooner while something is in progress.
pub async fn reconcile(cluster: Arc<ShoalCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&cluster, &ctx).await;
    ctx.metrics.reconciled(
        started.elapsed(),
        result.as_ref().err().map(Error::category),
    );
    result
}

async fn reconcile_inner(cluster: &ShoalCluster, ctx: &Context) -> Result<Action, Error> {
    if cluster.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove everything.
        return Ok(Action::await_change());
    }
    let token_secret = validate::token_secret_name(cluster);
    // Stage 1: read (client).
    let observed = read::read(&ctx.client, cluster, &token_secret)
        .await
        .map_err(Box::new)?;
    // Stage 2: validate (pure).
    let validated = match validate::validate(cluster, &observed.groups, &ctx.defaults) {
        Ok(validated) => validated,
        Err(invalid) => {
            let status = status::invalid_status(
                cluster.status.as_ref(),
                cluster.metadata.generation,
                invalid.to_string(),
                now(),
            );
            publish(
                ctx,
                cluster,
                EventType::Warning,
                "InvalidSpec",
                "Validate",
                invalid.to_string(),
            )
            .await;
            write_cluster_status(ctx, cluster, &status).await?;
            return Ok(Action::await_change());
        }
    };
    // Stage 3: plan and build (pure). A digest recorded for another version is stale.
    let previous = cluster.status.as_ref();
    let recorded_digest = previous
        .filter(|s| s.version.as_deref() == Some(&validated.version))
        .and_then(|s| s.image_digest.as_deref());
    let plan = plan::plan(&validated, &observed.pods, recorded_digest);

    // Stage 4: apply (client).
    let token = apply::ensure_token(ctx, &validated, observed.token).await?;
    apply::apply_service(ctx, &validated).await?;
    for deletion in &plan.delete {
        apply::delete_pod(ctx, &validated.namespace, &observed.pods, deletion).await?;
        let type_ = match deletion.reason {
            DeleteReason::OomKilled | DeleteReason::Died => EventType::Warning,
            _ => EventType::Normal,
        };
        let reason: &'static str = deletion.reason.into();
        let detail = if deletion.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", deletion.detail)
        };
        publish(
            ctx,
            cluster,
            type_,
            reason,
            "DeletePod",
            format!("deleted pod {}{detail}", deletion.name),
        )
        .await;
    }
    apply::create_pods(ctx, &validated, &plan).await?;
    if !plan.create.is_empty() {
        let names: Vec<String> = plan.create.iter().map(ResourceExt::name_any).collect();
        publish(
            ctx,
            cluster,
            EventType::Normal,
            "Created",
            "CreatePods",
            format!("created pods {}", names.join(", ")),
        )
        .await;
    }
    if previous.and_then(|s| s.image_digest.as_deref()) != plan.image_digest.as_deref()
        && let Some(digest) = &plan.image_digest
    {
        publish(
            ctx,
            cluster,
            EventType::Normal,
            "ImagePinned",
            "PinImage",
            format!(
                "version {} runs image {digest}; workers start from it",
                validated.version
            ),
        )
        .await;
    }
    let retire_result = apply::retire(&validated, &token, &plan).await;
    let retired = match &retire_result {
        Ok(retired) => retired.clone(),
        Err(error) => {
            publish(
                ctx,
                cluster,
                EventType::Warning,
                "ScaleDownWaiting",
                "Retire",
                format!("{error}: {}", source_chain(error)),
            )
            .await;
            Vec::new()
        }
    };
    for name in &retired {
        let deletion = plan::Deletion {
            name: name.clone(),
            reason: DeleteReason::Retired,
            detail: "its data moved to other workers".to_owned(),
        };
        apply::delete_pod(ctx, &validated.namespace, &observed.pods, &deletion).await?;
        publish(
            ctx,
            cluster,
            EventType::Normal,
            "Retired",
            "DeletePod",
            format!("deleted retired worker pod {name}"),
        )
        .await;
    }

    // Stage 5: status (pure, then written).
    let status = status::cluster_status(&validated, &observed.pods, &plan, previous, now());
    if previous.map(|p| &p.conditions) != Some(&status.conditions) {
        for skew in status
            .conditions
            .iter()
            .filter(|c| c.type_ == "VersionSkew" && c.status == "True")
        {
            publish(
                ctx,
                cluster,
                EventType::Warning,
                "VersionSkew",
                "CheckVersions",
                skew.message.clone(),
            )
            .await;
        }
    }
    write_cluster_status(ctx, cluster, &status).await?;
    write_group_statuses(ctx, &validated, &observed.groups, &status).await?;

    let busy = !plan.create.is_empty() || !plan.delete.is_empty() || !plan.retire.is_empty();
    Ok(
        if busy || status.phase != Some(crate::crd::Phase::Running) || retire_result.is_err() {
            Action::requeue(Duration::from_secs(5))
        } else {
            Action::requeue(Duration::from_secs(60))
        },
    )
}

fn source_chain(error: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    parts.join(": ")
}

/// Publishes an Event on the cluster; a failure to publish is logged, never fatal.
async fn publish(
    ctx: &Context,
    cluster: &ShoalCluster,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
        tracing::warn!(cluster = %cluster.name_any(), %error, "publishing an Event failed");
    }
}

async fn write_cluster_status(
    ctx: &Context,
    cluster: &ShoalCluster,
    status: &ShoalClusterStatus,
) -> Result<(), Error> {
    if cluster.status.as_ref() == Some(status) {
        return Ok(());
    }
    let name = cluster.name_any();
    let api = Api::<ShoalCluster>::namespaced(
        ctx.client.clone(),
        &cluster.namespace().unwrap_or_default(),
    );
    let patch = serde_json::json!({ "status": status });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| Error::Status {
            kind: "ShoalCluster",
            name,
            source: Box::new(source),
        })?;
    Ok(())
}

async fn write_group_statuses(
    ctx: &Context,
    cluster: &ValidatedCluster,
    groups: &[ShoalWorkerGroup],
    status: &ShoalClusterStatus,
) -> Result<(), Error> {
    let api = Api::<ShoalWorkerGroup>::namespaced(ctx.client.clone(), &cluster.namespace);
    for group in groups.iter().filter(|g| g.spec.cluster == cluster.name) {
        let name = group.name_any();
        let counts = status
            .worker_groups
            .iter()
            .find(|g| g.name == name)
            .cloned()
            .unwrap_or_default();
        let mut conditions = group
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        status::set_condition(
            &mut conditions,
            "Attached",
            true,
            "ClusterFound",
            format!("workers join cluster {}", cluster.name),
            group.metadata.generation,
            now(),
        );
        let ready = counts.ready >= counts.desired;
        status::set_condition(
            &mut conditions,
            "Ready",
            ready,
            if ready { "Ready" } else { "Pending" },
            format!("{} of {} worker pods ready", counts.ready, counts.desired),
            group.metadata.generation,
            now(),
        );
        let new = ShoalWorkerGroupStatus {
            workers: counts,
            selector: Some(names::group_selector(&cluster.name, &name)),
            observed_generation: group.metadata.generation,
            conditions,
        };
        if group.status.as_ref() == Some(&new) {
            continue;
        }
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({ "status": new })),
        )
        .await
        .map_err(|source| Error::Status {
            kind: "ShoalWorkerGroup",
            name: name.clone(),
            source: Box::new(source),
        })?;
    }
    Ok(())
}

/// On error: log with the category and cause chain, retry with a short delay.
pub fn error_policy(cluster: Arc<ShoalCluster>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(
        cluster = %cluster.name_any(),
        namespace = %cluster.namespace().unwrap_or_default(),
        category = error.category(),
        cause = %source_chain(error),
        "reconcile failed: {error}"
    );
    Action::requeue(Duration::from_secs(5))
}
