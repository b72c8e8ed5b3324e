//! Reconciling one `ShoalCluster` (and the `ShoalWorkerGroup`s attached to it) as named
//! stages: read (client) → client-lease verdict (pure; an expired lease deletes the
//! cluster, as idle culling does) → validate (pure) → pods lost and memory limits (pure) → ask the
//! scheduler (client) → autoscale and idle verdict (pure) → plan + build (pure) → apply
//! (client: lost workers reported, objects applied; recording an outcome) → status and
//! Events (pure, from the plan and the outcome) → publish and write (client). Events are
//! published in one place, after the apply.

pub mod apply;
pub mod autoscale;
pub mod build;
pub mod events;
pub mod idle;
pub mod lease;
pub mod losses;
pub mod memory;
pub mod network;
pub mod observe;
pub mod offer;
pub mod plan;
pub mod read;
pub mod status;
pub mod validate;

#[cfg(test)]
mod api_tests;

use crate::crd::{
    AutoscalerStatus, ShoalCluster, ShoalClusterStatus, ShoalWorkerGroup, ShoalWorkerGroupStatus,
};
use crate::metrics::{Metrics, RetireOutcome};
use crate::names;
use crate::scheduler_api::Adaptive;
use autoscale::{Decision, GroupPod};
use idle::Idle;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use validate::ValidatedCluster;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    /// Who publishes Events (for Events that must not join a series).
    pub reporter: Reporter,
    pub metrics: Arc<Metrics>,
    /// The version and image clusters get when they name none.
    pub defaults: validate::Defaults,
    /// Kills this process already reported (the cache may not show the status yet).
    pub reported: std::sync::Mutex<losses::Reported>,
    /// Whether clusters get a NetworkPolicy, and the operator's pods it admits.
    pub network: network::Settings,
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
    #[error("deleting {kind} {name} failed")]
    DeleteObject {
        kind: &'static str,
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
    #[error("deleting cluster {name} failed")]
    DeleteCluster {
        name: String,
        source: Box<kube::Error>,
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
    let previous = cluster.status.as_ref();
    let token_secret = validate::token_secret_name(cluster);
    // Stage 1: read (client).
    let observed = read::read(&ctx.client, cluster, &token_secret)
        .await
        .map_err(Box::new)?;
    let now = now();
    // Stage 1b: the client lease (pure). Expired: the cluster goes, valid or not.
    let verdict = lease::judge(
        cluster.spec.client_lease.as_ref(),
        observed.lease.as_ref(),
        cluster.metadata.creation_timestamp.as_ref().map(|t| t.0),
        now.0,
    );
    if let lease::Verdict::Expired(expiry) = &verdict {
        let name = cluster.name_any();
        publish_all(
            ctx,
            cluster,
            &[lease::note(&names::client_lease(&name), expiry)],
        )
        .await;
        let mut groups = vec![names::DEFAULT_GROUP.to_owned()];
        groups.extend(
            observed
                .groups
                .iter()
                .filter(|g| g.spec.cluster == name)
                .map(ResourceExt::name_any),
        );
        cull(ctx, cluster, &groups).await?;
        return Ok(Action::await_change());
    }
    let lease_wait = lease::wait(&verdict, now.0);
    // Stage 2: validate (pure).
    let validated = match validate::validate(cluster, &observed.groups, &ctx.defaults) {
        Ok(validated) => validated,
        Err(invalid) => return report_invalid(ctx, cluster, &invalid, &verdict, lease_wait).await,
    };
    // Stage 3: ask the scheduler (client; `None` when it cannot be asked).
    // Stage 2b: pods lost since the last look and each group's memory limit (pure).
    let known = known_kills(ctx, previous);
    let lost = losses::observe(&validated, &observed.pods, &known, &now);
    let memory = group_memory(&validated, previous, &lost, &now);
    let raised = memory::raised_limits(&memory);
    let token = match apply::ensure_token(ctx, &validated, observed.token.clone()).await {
        Ok(token) => token,
        Err(error) => return report_apply_failed(ctx, cluster, &validated, error).await,
    };
    let adaptive = ask_scheduler(&validated, &observed.pods, &token, &raised).await;
    // Stage 4: autoscale and idle verdict (pure).
    let decisions = decide_groups(
        &validated,
        &observed.pods,
        adaptive.as_ref(),
        previous,
        &now,
    );
    let idle = idle::judge(
        cluster.spec.idle_timeout,
        adaptive.as_ref(),
        previous.is_some_and(|p| p.idle_warned_at.is_some()),
    );
    // Stage 5: plan and build (pure). A digest recorded for another version is stale.
    let recorded_digest = previous
        .filter(|s| s.version.as_deref() == Some(&validated.version))
        .and_then(|s| s.image_digest.as_deref());
    let scales: plan::Scales = decisions
        .iter()
        .map(|(group, d)| {
            let scale = plan::GroupScale {
                target: d.target,
                victims: d.victims.clone(),
            };
            (group.clone(), scale)
        })
        .collect();
    let plan = plan::plan_scaled(
        &validated,
        &observed.pods,
        recorded_digest,
        &scales,
        &raised,
    );
    // Stage 6: apply (client), unless the cluster is culled.
    let mut outcome = apply::Outcome::default();
    let applied = if matches!(idle, Idle::Cull { .. }) {
        Ok(())
    } else {
        apply::carry_out(
            ctx,
            &validated,
            &token,
            &observed.pods,
            &plan,
            &lost,
            &mut outcome,
        )
        .await
    };
    let apply_error = applied.as_ref().err().map(|e| describe(e));
    // Stage 7: status and Events (pure).
    let (mut status, notes) = conclude(&Concluding {
        cluster: &validated,
        pods: &observed.pods,
        plan: &plan,
        decisions: &decisions,
        lost: &lost,
        memory: &memory,
        idle,
        outcome: &outcome,
        apply_error: apply_error.as_deref(),
        previous,
        now,
    });
    status.client_lease = lease::status(&verdict);
    remember_kills(ctx, &lost);
    // Stage 8: publish, record metrics, write (client).
    publish_all(ctx, cluster, &notes).await;
    record_metrics(&ctx.metrics, &validated, &decisions, &plan, &outcome, &lost);
    if matches!(idle, Idle::Cull { .. }) {
        let groups: Vec<String> = validated.groups.iter().map(|g| g.name.clone()).collect();
        cull(ctx, cluster, &groups).await?;
        return Ok(Action::await_change());
    }
    write_cluster_status(ctx, cluster, &status).await?;
    applied?;
    write_group_statuses(ctx, &validated, &observed.groups, &status).await?;
    let look = next_look(
        &validated,
        cluster.spec.idle_timeout,
        &plan,
        &status,
        &outcome,
    );
    Ok(Action::requeue(lease_wait.map_or(look, |w| w.min(look))))
}

/// What the status and Events of one reconcile are made from.
struct Concluding<'a> {
    cluster: &'a ValidatedCluster,
    pods: &'a [Pod],
    plan: &'a plan::Plan,
    decisions: &'a [(String, Decision)],
    /// Pods lost since the last look (new ones only).
    lost: &'a [losses::Loss],
    memory: &'a [memory::GroupMemory],
    idle: Idle,
    outcome: &'a apply::Outcome,
    apply_error: Option<&'a str>,
    previous: Option<&'a ShoalClusterStatus>,
    now: Time,
}

/// The new status and the Events to publish (pure). After a failed apply the status is
/// the previous one made `Degraded`, with this reconcile's autoscaler state kept.
fn conclude(c: &Concluding<'_>) -> (ShoalClusterStatus, Vec<events::Note>) {
    let autoscalers: BTreeMap<String, AutoscalerStatus> = c
        .decisions
        .iter()
        .map(|(group, d)| (group.clone(), d.status.clone()))
        .collect();
    let mut status = match c.apply_error {
        None => status::cluster_status(
            c.cluster,
            c.pods,
            c.plan,
            &autoscalers,
            c.previous,
            c.now.clone(),
        ),
        Some(message) => {
            let mut status = status::apply_failed_status(
                c.previous,
                c.cluster.generation,
                message.to_owned(),
                c.now.clone(),
            );
            for group in &mut status.worker_groups {
                if let Some(autoscaler) = autoscalers.get(&group.name) {
                    group.autoscaler = Some(autoscaler.clone());
                }
            }
            status
        }
    };
    status.idle_warned_at = match c.idle {
        Idle::Warn { .. } => Some(c.now.clone()),
        Idle::Busy => None,
        Idle::Unknown | Idle::Warned | Idle::Cull { .. } => status.idle_warned_at,
    };
    status::record_kills(
        &mut status,
        c.previous,
        &status::Kills {
            losses: c.lost,
            memory: c.memory,
            running: &c.outcome.running,
        },
        c.cluster.generation,
        &c.now,
    );
    let notes = events::notes(&events::Inputs {
        decisions: c.decisions,
        groups: &c.cluster.groups,
        losses: c.lost,
        memory: c.memory,
        idle: c.idle,
        plan: c.plan,
        outcome: c.outcome,
        apply_error: c.apply_error,
        version: &c.cluster.version,
        previous: c.previous,
        status: &status,
    });
    (status, notes)
}

/// An invalid spec: one Warning Event and a `Failed` status saying why; nothing applied.
/// With a client lease, looked at again at its expiry (`lease_wait`).
async fn report_invalid(
    ctx: &Context,
    cluster: &ShoalCluster,
    invalid: &validate::ValidateError,
    verdict: &lease::Verdict,
    lease_wait: Option<Duration>,
) -> Result<Action, Error> {
    let mut status = status::invalid_status(
        cluster.status.as_ref(),
        cluster.metadata.generation,
        invalid.to_string(),
        now(),
    );
    status.client_lease = lease::status(verdict);
    let note = events::Note {
        warning: true,
        reason: "InvalidSpec",
        action: "Validate",
        note: invalid.to_string(),
        distinct: false,
    };
    publish_all(ctx, cluster, &[note]).await;
    write_cluster_status(ctx, cluster, &status).await?;
    Ok(lease_wait.map_or_else(Action::await_change, Action::requeue))
}

/// Applying failed before anything else could be decided: a Warning Event and a
/// `Degraded` status naming the object and the API's message, then the error.
async fn report_apply_failed(
    ctx: &Context,
    cluster: &ShoalCluster,
    validated: &ValidatedCluster,
    error: Error,
) -> Result<Action, Error> {
    let message = describe(&error);
    let status = status::apply_failed_status(
        cluster.status.as_ref(),
        validated.generation,
        message.clone(),
        now(),
    );
    let note = events::Note {
        warning: true,
        reason: "ApplyFailed",
        action: "Apply",
        note: message,
        distinct: false,
    };
    publish_all(ctx, cluster, &[note]).await;
    write_cluster_status(ctx, cluster, &status).await?;
    Err(error)
}

/// The kills already reported: in the status, or by this process.
fn known_kills(
    ctx: &Context,
    previous: Option<&ShoalClusterStatus>,
) -> std::collections::BTreeSet<String> {
    let mut known = losses::recorded_keys(previous);
    let reported = ctx
        .reported
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    known.extend(reported.keys().cloned());
    known
}

fn remember_kills(ctx: &Context, lost: &[losses::Loss]) {
    let mut reported = ctx
        .reported
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for loss in lost {
        reported.remember(loss.key());
    }
}

/// Each group's memory limit for new pods after this reconcile's OOM kills (pure).
fn group_memory(
    cluster: &ValidatedCluster,
    previous: Option<&ShoalClusterStatus>,
    lost: &[losses::Loss],
    now: &Time,
) -> Vec<memory::GroupMemory> {
    cluster
        .groups
        .iter()
        .map(|group| {
            let before = previous
                .and_then(|s| s.worker_groups.iter().find(|g| g.name == group.name))
                .and_then(|g| g.raised_memory_limit.as_ref());
            memory::decide(group, before, &losses::kills(lost, Some(&group.name)), now)
        })
        .collect()
}

/// Asks a ready scheduler for the autoscaling estimate (telling it each group's memory
/// limit, `raised` where `oomPolicy` raised it); `None` (logged) when there is no ready
/// scheduler or it does not answer.
async fn ask_scheduler(
    cluster: &ValidatedCluster,
    pods: &[Pod],
    token: &str,
    raised: &plan::Raised,
) -> Option<Adaptive> {
    if !observe::scheduler_ready(pods, &cluster.version) {
        return None;
    }
    let answer = crate::scheduler_api::adaptive_target(
        &cluster.scheduler_address(),
        token,
        &offer::offers(cluster, raised),
        offer::target_duration(cluster),
    )
    .await;
    match answer {
        Ok(adaptive) => Some(adaptive),
        Err(error) => {
            tracing::warn!(cluster = %cluster.name, cause = %describe(&error), "asking the scheduler for its adaptive target failed; no scale-down");
            None
        }
    }
}

/// The autoscaler's decision for every group, in group order (pure).
fn decide_groups(
    cluster: &ValidatedCluster,
    pods: &[Pod],
    adaptive: Option<&Adaptive>,
    previous: Option<&ShoalClusterStatus>,
    now: &Time,
) -> Vec<(String, Decision)> {
    cluster
        .groups
        .iter()
        .map(|group| {
            let group_pods: Vec<GroupPod> = pods
                .iter()
                .filter(|p| observe::worker_slot(p).is_some_and(|(g, _)| g == group.name))
                .map(|p| GroupPod {
                    name: observe::name(p).to_owned(),
                    state: observe::state(p),
                })
                .collect();
            let before = previous
                .and_then(|s| s.worker_groups.iter().find(|g| g.name == group.name))
                .and_then(|g| g.autoscaler.as_ref());
            // A reachable scheduler that does not know the group yet has no work for it.
            let advice = adaptive.map(|a| a.groups.get(&group.name).cloned().unwrap_or_default());
            let decision =
                autoscale::decide(&group.pool, advice.as_ref(), &group_pods, before, now);
            (group.name.clone(), decision)
        })
        .collect()
}

fn record_metrics(
    metrics: &Metrics,
    cluster: &ValidatedCluster,
    decisions: &[(String, Decision)],
    plan: &plan::Plan,
    outcome: &apply::Outcome,
    lost: &[losses::Loss],
) {
    let (ns, name) = (cluster.namespace.as_str(), cluster.name.as_str());
    for kill in lost.iter().filter(|l| l.cause == losses::Cause::OomKilled) {
        match &kill.group {
            Some(group) => metrics.worker_oom_killed(ns, name, group),
            None => metrics.scheduler_oom_killed(ns, name),
        }
    }
    for (group, decision) in decisions {
        metrics.target(ns, name, group, decision.target);
        if let Some(change) = &decision.change {
            metrics.scaled(ns, name, group, change.direction.into());
        }
    }
    metrics.retirements(ns, name, RetireOutcome::Retired, outcome.retired.len());
    metrics.retirements(ns, name, RetireOutcome::Refused, outcome.refused.len());
    if outcome.retire_error.is_some() {
        metrics.retirements(ns, name, RetireOutcome::Failed, plan.retire.len());
    }
}

/// When to look again: every 5 s while autoscaling (a new graph brings workers up within
/// one period) or while something is in progress, else every minute; with an idle
/// timeout, at least every tenth of it (so the warning at 80% is never skipped).
fn next_look(
    cluster: &ValidatedCluster,
    idle_timeout: Option<i64>,
    plan: &plan::Plan,
    status: &ShoalClusterStatus,
    outcome: &apply::Outcome,
) -> Duration {
    let idle_period = idle_timeout.map(|t| Duration::from_secs((t / 10).clamp(2, 60) as u64));
    let autoscaling = cluster.groups.iter().any(|g| g.pool.autoscaling.enabled);
    let busy = !plan.create.is_empty() || !plan.delete.is_empty() || !plan.retire.is_empty();
    if autoscaling
        || busy
        || status.phase != Some(crate::crd::Phase::Running)
        || outcome.retire_error.is_some()
    {
        idle_period.map_or(Duration::from_secs(5), |p| p.min(Duration::from_secs(5)))
    } else {
        idle_period.unwrap_or(Duration::from_secs(60))
    }
}

/// Deletes the cluster (idle, or its client lease expired) and forgets its metrics.
async fn cull(ctx: &Context, cluster: &ShoalCluster, groups: &[String]) -> Result<(), Error> {
    delete_cluster(ctx, cluster).await?;
    ctx.metrics.forget_cluster(
        &cluster.namespace().unwrap_or_default(),
        &cluster.name_any(),
        groups,
    );
    Ok(())
}

/// Deletes the cluster object (owner references cascade), only if it is still the one read.
async fn delete_cluster(ctx: &Context, cluster: &ShoalCluster) -> Result<(), Error> {
    let name = cluster.name_any();
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: cluster.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match Api::<ShoalCluster>::namespaced(
        ctx.client.clone(),
        &cluster.namespace().unwrap_or_default(),
    )
    .delete(&name, &params)
    .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(source) => Err(Error::DeleteCluster {
            name,
            source: Box::new(source),
        }),
    }
}

/// An error and its causes on one line (for Events, conditions and logs).
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let chain = source_chain(error);
    if chain.is_empty() {
        error.to_string()
    } else {
        format!("{error}: {chain}")
    }
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

/// Publishes the Events on the cluster, in order; a failure to publish is logged, never
/// fatal.
async fn publish_all(ctx: &Context, cluster: &ShoalCluster, notes: &[events::Note]) {
    for note in notes {
        publish(ctx, cluster, note).await;
    }
}

/// Publishes one Event on `object` (a cluster or a job); a failure to publish is logged,
/// never fatal.
pub(crate) async fn publish<K>(ctx: &Context, object: &K, note: &events::Note)
where
    K: Resource<DynamicType = ()>,
{
    let event = Event {
        type_: if note.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: note.reason.to_owned(),
        note: Some(note.note.clone()),
        action: note.action.to_owned(),
        secondary: None,
    };
    // A fresh recorder has no series to fold the Event into.
    let fresh;
    let recorder = if note.distinct {
        fresh = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
        &fresh
    } else {
        &ctx.recorder
    };
    if let Err(error) = recorder.publish(&event, &object.object_ref(&())).await {
        let kind = K::kind(&());
        tracing::warn!(%kind, name = %object.name_any(), %error, "publishing an Event failed");
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
    let mut patch = serde_json::json!({ "status": status });
    // A merge patch keeps fields it does not mention: a cleared warning is sent as null.
    if status.idle_warned_at.is_none() {
        patch["status"]["idleWarnedAt"] = serde_json::Value::Null;
    }
    // Every field of the lease is written, unset ones as null, so none outlives the Lease.
    patch["status"]["clientLease"] =
        status
            .client_lease
            .as_ref()
            .map_or(serde_json::Value::Null, |lease| {
                serde_json::json!({
                    "holder": lease.holder,
                    "renewTime": lease.renew_time,
                    "expiresAt": lease.expires_at,
                })
            });
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
        let (killed, reason, message) =
            status::workers_oom_condition(std::slice::from_ref(&counts));
        status::set_condition(
            &mut conditions,
            "WorkersOOMKilled",
            killed,
            reason,
            message,
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
        let mut patch = serde_json::json!({ "status": new });
        // A merge patch keeps fields it does not mention: a dropped raised limit is null.
        if new.workers.raised_memory_limit.is_none() {
            patch["status"]["workers"]["raisedMemoryLimit"] = serde_json::Value::Null;
        }
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{cluster, defaults, time};

    fn concluded(idle: Idle, previous: Option<&ShoalClusterStatus>) -> ShoalClusterStatus {
        let validated = validate::validate(&cluster("demo"), &[], &defaults("0.3.0"))
            .unwrap_or_else(|e| {
                unreachable!("{e}");
            });
        let plan = plan::plan(&validated, &[], None);
        let (status, _) = conclude(&Concluding {
            cluster: &validated,
            pods: &[],
            plan: &plan,
            decisions: &[],
            lost: &[],
            memory: &[],
            idle,
            outcome: &apply::Outcome::default(),
            apply_error: None,
            previous,
            now: time(50),
        });
        status
    }

    /// The idle warning is remembered in status until the cluster is busy again.
    #[test]
    fn idle_warning_is_remembered_until_busy() {
        let warned = concluded(
            Idle::Warn {
                idle_seconds: 80.0,
                timeout: 100,
            },
            None,
        );
        assert_eq!(warned.idle_warned_at, Some(time(50)));
        let still = concluded(Idle::Warned, Some(&warned));
        assert_eq!(still.idle_warned_at, Some(time(50)));
        let busy = concluded(Idle::Busy, Some(&still));
        assert_eq!(busy.idle_warned_at, None);
    }
}
