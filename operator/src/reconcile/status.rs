//! Pure status: phase, counts per group, OOM records, conditions (with
//! `observedGeneration` and transition times kept when a condition does not change),
//! from what was observed and planned. `now` is an argument; no client.

use super::losses::{self, Loss, Running};
use super::memory::GroupMemory;
use super::observe::{self, PodState};
use super::plan::Plan;
use super::validate::ValidatedCluster;
use crate::crd::{
    AutoscalerStatus, OomKill, Phase, SchedulerStatus, ShoalClusterStatus, WorkerGroupStatus,
};
use crate::names;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use std::collections::BTreeMap;

/// Sets a condition, keeping its transition time when its status is unchanged.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Time,
) {
    let status = if ok { "True" } else { "False" }.to_owned();
    let last_transition_time = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(now, |c| c.last_transition_time.clone());
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time,
    });
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// Counts of one group's pods; `autoscaler` (when decided) gives the desired count.
pub fn group_status(
    cluster: &ValidatedCluster,
    pods: &[Pod],
    group: &str,
    autoscaler: Option<&AutoscalerStatus>,
) -> WorkerGroupStatus {
    let desired = autoscaler.map(|a| a.target).unwrap_or_else(|| {
        cluster
            .groups
            .iter()
            .find(|g| g.name == group)
            .map_or(0, |g| g.pool.replicas)
    });
    let mut status = WorkerGroupStatus {
        name: group.to_owned(),
        desired,
        current: 0,
        ready: 0,
        autoscaler: autoscaler.cloned(),
        oom_kills: None,
        raised_memory_limit: None,
    };
    for pod in pods
        .iter()
        .filter(|p| observe::worker_slot(p).is_some_and(|(g, _)| g == group))
    {
        match observe::state(pod) {
            PodState::Pending => status.current += 1,
            PodState::Running { ready } => {
                status.current += 1;
                status.ready += i32::from(ready);
            }
            PodState::Terminating | PodState::Finished { .. } => {}
        }
    }
    status
}

/// The whole cluster status after a successful apply. `previous` supplies condition
/// transition times; `autoscalers` (by group) the desired counts and autoscaler state.
pub fn cluster_status(
    cluster: &ValidatedCluster,
    pods: &[Pod],
    plan: &Plan,
    autoscalers: &BTreeMap<String, AutoscalerStatus>,
    previous: Option<&ShoalClusterStatus>,
    now: Time,
) -> ShoalClusterStatus {
    let generation = cluster.generation;
    let groups: Vec<WorkerGroupStatus> = cluster
        .groups
        .iter()
        .map(|g| group_status(cluster, pods, &g.name, autoscalers.get(&g.name)))
        .collect();
    let ready_workers: i32 = groups.iter().map(|g| g.ready).sum();
    let desired_workers: i32 = groups.iter().map(|g| g.desired).sum();
    let scheduler = pods.iter().find(|p| observe::is_scheduler(p));
    let scheduler_state = scheduler.map(observe::state);
    let scheduler_ready = matches!(scheduler_state, Some(PodState::Running { ready: true }));
    let upgrading = scheduler.is_some_and(|p| observe::version_label(p) != Some(&cluster.version));

    let mut conditions = previous.map(|p| p.conditions.clone()).unwrap_or_default();
    let mut set = |type_: &str, ok: bool, reason: &str, message: String| {
        set_condition(
            &mut conditions,
            type_,
            ok,
            reason,
            message,
            generation,
            now.clone(),
        );
    };
    set("Valid", true, "Validated", "the spec is valid".to_owned());
    set(
        "Applied",
        true,
        "Applied",
        "every object was applied".to_owned(),
    );
    let (reason, message) = match &scheduler_state {
        _ if upgrading => (
            "Upgrading",
            format!("replacing the scheduler with version {}", cluster.version),
        ),
        Some(PodState::Running { ready: true }) => ("Ready", "the scheduler is ready".to_owned()),
        Some(PodState::Running { ready: false }) => {
            match scheduler
                .and_then(observe::termination)
                .filter(|t| t.reason == observe::OOM_KILLED)
            {
                Some(_) => (
                    "OOMKilled",
                    format!(
                        "the scheduler container was OOM-killed (memory limit {}) and restarted; \
                         it is not ready yet",
                        scheduler
                            .and_then(observe::memory_limit)
                            .map_or("none", |q| q.0.as_str())
                    ),
                ),
                None => (
                    "Starting",
                    "the scheduler runs but is not ready yet".to_owned(),
                ),
            }
        }
        Some(PodState::Finished { reason, .. }) => (
            "Died",
            format!("the scheduler pod ended ({reason}); it is being replaced"),
        ),
        Some(PodState::Terminating) => (
            "Terminating",
            "the scheduler pod is being deleted".to_owned(),
        ),
        Some(PodState::Pending) | None => {
            ("Pending", "the scheduler pod is not running yet".to_owned())
        }
    };
    set("SchedulerReady", scheduler_ready, reason, message);
    let workers_ready = ready_workers >= desired_workers;
    set(
        "WorkersReady",
        workers_ready,
        if workers_ready { "Ready" } else { "Pending" },
        format!("{ready_workers} of {desired_workers} worker pods ready"),
    );
    let skew_message = match plan.skew.as_slice() {
        [] => format!("every worker runs version {}", cluster.version),
        skews => skews
            .iter()
            .map(|s| {
                let version = observe::version_of_image(&s.image).unwrap_or("unknown");
                format!(
                    "worker pod {} runs image {} (version {version}) but the cluster is pinned to version {} ({}); \
                     the scheduler refuses it: delete the pod and the operator recreates it on {}",
                    s.pod, s.image, cluster.version, plan.worker_image, cluster.version
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    };
    set(
        "VersionSkew",
        !plan.skew.is_empty(),
        if plan.skew.is_empty() {
            "Consistent"
        } else {
            "WorkerImageDiffers"
        },
        skew_message,
    );
    let ready = scheduler_ready && workers_ready && plan.skew.is_empty();
    set(
        "Ready",
        ready,
        if ready { "Ready" } else { "NotReady" },
        if ready {
            "the scheduler and every wanted worker are ready".to_owned()
        } else {
            "see the other conditions".to_owned()
        },
    );

    let phase = if upgrading {
        Phase::Upgrading
    } else if ready {
        Phase::Running
    } else if scheduler_ready && !plan.skew.is_empty() {
        Phase::Degraded
    } else {
        Phase::Pending
    };
    let default_group = groups.first().cloned().unwrap_or_default();
    ShoalClusterStatus {
        phase: Some(phase),
        version: Some(cluster.version.clone()),
        image_digest: plan.image_digest.clone(),
        scheduler_address: Some(cluster.scheduler_address()),
        dashboard_url: Some(format!(
            "http://{}.{}.svc:{}/status",
            names::scheduler_service(&cluster.name),
            cluster.namespace,
            names::DASHBOARD_PORT
        )),
        token_secret: Some(cluster.token_secret.clone()),
        replicas: default_group.current,
        selector: Some(names::group_selector(&cluster.name, names::DEFAULT_GROUP)),
        ready_workers,
        desired_workers,
        worker_groups: groups,
        scheduler: previous.and_then(|p| p.scheduler.clone()),
        observed_generation: generation,
        idle_warned_at: previous.and_then(|p| p.idle_warned_at.clone()),
        client_lease: previous.and_then(|p| p.client_lease.clone()),
        conditions,
    }
}

/// Everything the OOM records of one reconcile are made from.
pub struct Kills<'a> {
    /// Pods lost since the last look (new ones only).
    pub losses: &'a [Loss],
    /// What `oomPolicy` decided per group.
    pub memory: &'a [GroupMemory],
    /// What the scheduler said each lost worker was running.
    pub running: &'a BTreeMap<String, Running>,
}

/// Adds this reconcile's OOM kills to the records of `previous` (per group and for the
/// scheduler), sets each group's raised memory limit, and the `WorkersOOMKilled` and
/// `SchedulerOOMKilled` conditions.
pub fn record_kills(
    status: &mut ShoalClusterStatus,
    previous: Option<&ShoalClusterStatus>,
    kills: &Kills<'_>,
    generation: Option<i64>,
    now: &Time,
) {
    for group in &mut status.worker_groups {
        let before = previous
            .and_then(|p| p.worker_groups.iter().find(|g| g.name == group.name))
            .and_then(|g| g.oom_kills.as_ref());
        group.oom_kills = losses::record(
            before,
            &losses::kills(kills.losses, Some(&group.name)),
            kills.running,
        );
        group.raised_memory_limit = kills
            .memory
            .iter()
            .find(|m| m.group == group.name)
            .and_then(|m| m.record.clone());
    }
    let before = previous
        .and_then(|p| p.scheduler.as_ref())
        .and_then(|s| s.oom_kills.as_ref());
    let scheduler = losses::record(before, &losses::kills(kills.losses, None), kills.running);
    status.scheduler = scheduler.map(|oom_kills| SchedulerStatus {
        oom_kills: Some(oom_kills),
    });
    let (ok, reason, message) = workers_oom_condition(&status.worker_groups);
    set_condition(
        &mut status.conditions,
        "WorkersOOMKilled",
        ok,
        reason,
        message,
        generation,
        now.clone(),
    );
    let (ok, reason, message) = scheduler_oom_condition(status.scheduler.as_ref());
    set_condition(
        &mut status.conditions,
        "SchedulerOOMKilled",
        ok,
        reason,
        message,
        generation,
        now.clone(),
    );
}

fn kill_text(kill: &OomKill) -> String {
    format!(
        "pod {} at memory limit {}, at {}",
        kill.pod,
        kill.memory_limit.as_deref().unwrap_or("none"),
        kill.time.0
    )
}

/// `WorkersOOMKilled` over `groups`: true after any kill, with the count and the last.
pub fn workers_oom_condition(groups: &[WorkerGroupStatus]) -> (bool, &'static str, String) {
    let total: i64 = groups
        .iter()
        .filter_map(|g| g.oom_kills.as_ref())
        .map(|k| k.total)
        .sum();
    let last = groups
        .iter()
        .filter_map(|g| Some((g.name.as_str(), g.oom_kills.as_ref()?.recent.last()?)))
        .max_by(|a, b| a.1.time.0.cmp(&b.1.time.0));
    match last {
        Some((group, kill)) if total > 0 => (
            true,
            "OOMKilled",
            format!(
                "{total} worker pod{} OOM-killed; the last: {} (group {group}); see the \
                 WorkerOOMKilled Events and status.workerGroups[].oomKills",
                if total == 1 { "" } else { "s" },
                kill_text(kill),
            ),
        ),
        _ => (
            false,
            "NoOOMKill",
            "no worker pod was OOM-killed".to_owned(),
        ),
    }
}

/// `SchedulerOOMKilled`: true after any kill of the scheduler container.
pub fn scheduler_oom_condition(
    scheduler: Option<&SchedulerStatus>,
) -> (bool, &'static str, String) {
    let kills = scheduler.and_then(|s| s.oom_kills.as_ref());
    match kills.and_then(|k| Some((k.total, k.recent.last()?))) {
        Some((total, kill)) if total > 0 => (
            true,
            "OOMKilled",
            format!(
                "the scheduler container was OOM-killed {total} time{}; the last: {}; its \
                 running work was lost and clients were disconnected: raise \
                 spec.scheduler.resources.limits.memory",
                if total == 1 { "" } else { "s" },
                kill_text(kill),
            ),
        ),
        _ => (
            false,
            "NoOOMKill",
            "the scheduler container was never OOM-killed".to_owned(),
        ),
    }
}

/// Status when applying an object failed: the previous status, phase `Degraded`,
/// `Applied=False` naming the object and the API's message, `Ready=False`.
pub fn apply_failed_status(
    previous: Option<&ShoalClusterStatus>,
    generation: Option<i64>,
    message: String,
    now: Time,
) -> ShoalClusterStatus {
    failing(
        previous,
        generation,
        ("Applied", "ApplyFailed", message),
        "applying an object failed; see Applied",
        Phase::Degraded,
        now,
    )
}

/// Status when the spec cannot be reconciled: phase `Failed`, `Valid=False` with why.
pub fn invalid_status(
    previous: Option<&ShoalClusterStatus>,
    generation: Option<i64>,
    message: String,
    now: Time,
) -> ShoalClusterStatus {
    failing(
        previous,
        generation,
        ("Valid", "InvalidSpec", message),
        "the spec is invalid; see Valid",
        Phase::Failed,
        now,
    )
}

/// The previous status with one failing condition `(type, reason, message)`, `Ready`
/// false pointing at it, and `phase`.
fn failing(
    previous: Option<&ShoalClusterStatus>,
    generation: Option<i64>,
    (type_, reason, message): (&str, &str, String),
    ready_message: &str,
    phase: Phase,
    now: Time,
) -> ShoalClusterStatus {
    let mut status = previous.cloned().unwrap_or_default();
    set_condition(
        &mut status.conditions,
        type_,
        false,
        reason,
        message,
        generation,
        now.clone(),
    );
    set_condition(
        &mut status.conditions,
        "Ready",
        false,
        reason,
        ready_message.to_owned(),
        generation,
        now,
    );
    status.phase = Some(phase);
    status.observed_generation = generation;
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{cluster, defaults, ready, time};
    use crate::reconcile::{plan::plan, validate::validate};

    fn condition<'a>(status: &'a ShoalClusterStatus, type_: &str) -> &'a Condition {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
    }

    /// A fresh cluster is Pending with counts and conditions filled in.
    #[test]
    fn fresh_cluster_is_pending() {
        let c = validate(&cluster("demo"), &[], &defaults("0.3.0")).expect("valid");
        let p = plan(&c, &[], None);
        let status = cluster_status(&c, &p.create, &p, &BTreeMap::new(), None, time(1));
        assert_eq!(status.phase, Some(Phase::Pending));
        assert_eq!(
            (
                status.ready_workers,
                status.desired_workers,
                status.replicas
            ),
            (0, 2, 2)
        );
        assert_eq!(status.observed_generation, Some(1));
        let ready = condition(&status, "Ready");
        assert_eq!(ready.status, "False");
    }

    /// All pods ready: Running; a condition's transition time stays while its status holds.
    #[test]
    fn ready_cluster_is_running_and_transition_times_are_kept() {
        let c = validate(&cluster("demo"), &[], &defaults("0.3.0")).expect("valid");
        let pods: Vec<Pod> = plan(&c, &[], None)
            .create
            .into_iter()
            .map(|p| ready(p, "sha256:d"))
            .collect();
        let p = plan(&c, &pods, None);
        let first = cluster_status(&c, &pods, &p, &BTreeMap::new(), None, time(1));
        assert_eq!(first.phase, Some(Phase::Running));
        let second = cluster_status(&c, &pods, &p, &BTreeMap::new(), Some(&first), time(2));
        let valid = condition(&second, "Valid");
        assert_eq!(valid.last_transition_time, time(1));
    }

    /// A failed apply makes the cluster Degraded with Applied=False carrying the API's message.
    #[test]
    fn failed_apply_is_degraded_with_the_message() {
        let status = apply_failed_status(
            None,
            Some(3),
            "Service demo-scheduler: the Service IP range is full".to_owned(),
            time(1),
        );
        assert_eq!(status.phase, Some(Phase::Degraded));
        let applied = condition(&status, "Applied");
        assert_eq!(applied.status, "False");
        assert!(applied.message.contains("IP range is full"));
        assert_eq!(applied.observed_generation, Some(3));
    }

    /// The autoscaler's target is the group's desired count, and its state is in status.
    #[test]
    fn autoscaler_target_is_desired() {
        let c = validate(&cluster("demo"), &[], &defaults("0.3.0")).expect("valid");
        let p = plan(&c, &[], None);
        let autoscaler = AutoscalerStatus {
            target: 7,
            state: crate::crd::AutoscalerState::ScalingUp,
            ..AutoscalerStatus::default()
        };
        let by_group = BTreeMap::from([("default".to_owned(), autoscaler.clone())]);
        let status = cluster_status(&c, &[], &p, &by_group, None, time(1));
        assert_eq!(status.desired_workers, 7);
        assert_eq!(status.worker_groups[0].autoscaler, Some(autoscaler));
    }

    /// A kill is counted once into the group's record with a True WorkersOOMKilled
    /// condition; a later reconcile without kills keeps the record, count and condition.
    #[test]
    fn oom_kills_are_recorded_and_kept() {
        use crate::fixtures::{finished, memory};
        use crate::reconcile::losses;
        let mut spec = cluster("demo");
        spec.spec.workers.resources = Some(memory("256Mi", None));
        let c = validate(&spec, &[], &defaults("0.3.0")).expect("valid");
        let mut pods = plan(&c, &[], None).create;
        pods[1] = finished(pods[1].clone(), "OOMKilled", 137);
        pods[1].metadata.uid = Some("u1".to_owned());
        let lost = losses::observe(&c, &pods, &Default::default(), &time(5));
        let p = plan(&c, &pods, None);
        let running = BTreeMap::from([(
            "demo-default-worker-0".to_owned(),
            Running::Tasks {
                keys: vec!["x".to_owned()],
                total: 1,
            },
        )]);
        let kills = Kills {
            losses: &lost,
            memory: &[],
            running: &running,
        };
        let mut first = cluster_status(&c, &pods, &p, &BTreeMap::new(), None, time(5));
        record_kills(&mut first, None, &kills, Some(1), &time(5));
        let record = first.worker_groups[0].oom_kills.clone().unwrap_or_default();
        assert_eq!(record.total, 1);
        assert_eq!(record.recent[0].tasks, ["x"]);
        assert_eq!(condition(&first, "WorkersOOMKilled").status, "True");
        assert_eq!(condition(&first, "SchedulerOOMKilled").status, "False");

        let none = Kills {
            losses: &[],
            memory: &[],
            running: &BTreeMap::new(),
        };
        let mut second = cluster_status(&c, &pods, &p, &BTreeMap::new(), Some(&first), time(9));
        record_kills(&mut second, Some(&first), &none, Some(1), &time(9));
        assert_eq!(
            second.worker_groups[0].oom_kills,
            first.worker_groups[0].oom_kills
        );
        let killed = condition(&second, "WorkersOOMKilled");
        assert_eq!(killed.last_transition_time, time(5));
        assert!(
            killed.message.contains("1 worker pod OOM-killed")
                && killed
                    .message
                    .contains("demo-default-worker-0 at memory limit 256Mi"),
            "{}",
            killed.message
        );
    }

    /// Version skew names the pod and both versions.
    #[test]
    fn skew_condition_names_both_versions() {
        let c = validate(&cluster("demo"), &[], &defaults("0.3.0")).expect("valid");
        let mut pods = plan(&c, &[], None).create;
        if let Some(spec) = pods[1].spec.as_mut() {
            spec.containers[0].image = Some("shoal.dev/shoal:0.0.9".to_owned());
        }
        let p = plan(&c, &pods, None);
        let status = cluster_status(&c, &pods, &p, &BTreeMap::new(), None, time(1));
        let skew = condition(&status, "VersionSkew");
        assert_eq!(skew.status, "True");
        assert!(
            skew.message.contains("version 0.0.9") && skew.message.contains("version 0.3.0"),
            "{}",
            skew.message
        );
    }
}
