//! Pure: pods lost since the last look. A worker pod whose container ended (OOM-killed,
//! crashed, or the pod evicted) is reported to the scheduler (`ReportWorkerLost`); an
//! OOM kill of a worker or of the scheduler container is recorded in status (a count and
//! the last few kills) and is an Event, exactly once per kill: kills already in status
//! (or already reported by this operator process) are not new. No client, no clock.

use super::memory;
use super::observe::{self, PodState};
use super::validate::ValidatedCluster;
use crate::crd::{OomKill, OomKills, ShoalClusterStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Kills kept per group (and for the scheduler) in status.
pub const RECENT_KILLS: usize = 5;
/// Task keys kept per kill in status.
pub const RECORDED_TASKS: usize = 10;
/// Kill keys this operator process remembers (the status written a moment ago may not be
/// in the cache the next reconcile reads yet).
const REMEMBERED: usize = 1024;

/// Why a pod went away (the wire's `LossCause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
pub enum Cause {
    /// The kernel killed the container at its memory limit (`OOMKilled`).
    OomKilled,
    /// The container exited with an error.
    Crashed,
    /// The kubelet removed the pod (evicted, node shutdown, ...).
    Removed,
}

/// A pod whose container ended: a worker gone for good, or the scheduler's container
/// killed for memory (and restarted in place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    pub pod: String,
    pub uid: String,
    /// The worker group; `None` for the scheduler.
    pub group: Option<String>,
    pub cause: Cause,
    pub container: String,
    /// The kubelet's reason (`OOMKilled`, `Error`, `Evicted`, ...).
    pub reason: String,
    pub exit_code: Option<i32>,
    /// The container's memory limit as its spec says (e.g. `256Mi`).
    pub memory_limit: Option<String>,
    /// The pod's own message (e.g. why it was evicted).
    pub message: Option<String>,
    /// When the container ended (the kubelet's time), else when it was seen.
    pub time: Time,
}

impl Loss {
    /// The memory limit in bytes.
    pub fn memory_bytes(&self) -> Option<u64> {
        self.memory_limit.as_deref().and_then(memory::bytes)
    }

    /// What identifies this kill across reconciles: a worker pod lives once, the
    /// scheduler's container may be killed again in the same pod.
    pub fn key(&self) -> String {
        match self.group {
            Some(_) => self.uid.clone(),
            None => scheduler_key(&self.uid, &self.time),
        }
    }

    /// One line for the scheduler and the logs, e.g. `pod demo-default-worker-1:
    /// container OOMKilled, exit code 137, memory limit 256Mi`.
    pub fn describe(&self) -> String {
        let mut parts = vec![match self.cause {
            Cause::Removed => match self.message.as_deref().filter(|m| !m.is_empty()) {
                Some(message) => format!("{} ({})", self.reason, clip(message, 200)),
                None => self.reason.clone(),
            },
            Cause::OomKilled | Cause::Crashed => match self.exit_code {
                Some(code) => format!("container {}, exit code {code}", self.reason),
                None => format!("container {}", self.reason),
            },
        }];
        if let Some(limit) = &self.memory_limit {
            parts.push(format!("memory limit {limit}"));
        }
        format!("pod {}: {}", self.pod, parts.join(", "))
    }
}

fn scheduler_key(uid: &str, time: &Time) -> String {
    format!("{uid}@{}", time.0)
}

/// `text`, cut to at most `max` characters (an ellipsis marks the cut).
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// What the scheduler said a lost worker was running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Running {
    /// Up to 20 task keys, and how many there were.
    Tasks { keys: Vec<String>, total: u32 },
    /// The scheduler knows no worker of that name (it never connected, or the scheduler
    /// restarted since).
    UnknownWorker,
    /// The scheduler could not be asked; why.
    Unreachable(String),
}

/// Kill keys reported by this operator process, oldest first, bounded.
#[derive(Debug, Default)]
pub struct Reported {
    keys: VecDeque<String>,
}

impl Reported {
    pub fn contains(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }

    pub fn remember(&mut self, key: String) {
        if self.contains(&key) {
            return;
        }
        if self.keys.len() >= REMEMBERED {
            self.keys.pop_front();
        }
        self.keys.push_back(key);
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.keys.iter()
    }
}

/// The keys of the kills `status` records.
pub fn recorded_keys(status: Option<&ShoalClusterStatus>) -> BTreeSet<String> {
    let Some(status) = status else {
        return BTreeSet::new();
    };
    let workers = status
        .worker_groups
        .iter()
        .filter_map(|g| g.oom_kills.as_ref())
        .flat_map(|k| k.recent.iter().map(|kill| kill.pod_uid.clone()));
    let scheduler = status
        .scheduler
        .as_ref()
        .and_then(|s| s.oom_kills.as_ref())
        .into_iter()
        .flat_map(|k| k.recent.iter())
        .map(|kill| scheduler_key(&kill.pod_uid, &kill.time));
    workers.chain(scheduler).collect()
}

/// Which end of a worker pod is a loss to report, and its cause. A clean exit (the
/// scheduler told the worker to go) is none.
fn cause(pod: &Pod, reason: &str, exit_code: Option<i32>) -> Option<Cause> {
    let container = observe::termination(pod);
    if container
        .as_ref()
        .is_some_and(|t| t.reason == observe::OOM_KILLED)
    {
        return Some(Cause::OomKilled);
    }
    if observe::pod_reason(pod).is_some() {
        return Some(Cause::Removed);
    }
    if exit_code == Some(0) || reason == "Completed" {
        return None;
    }
    Some(Cause::Crashed)
}

/// Pods lost since the last look whose keys are not in `known`: finished worker pods of
/// the cluster's version and groups (pods being deleted were handled when they ended),
/// and the scheduler container's OOM kill.
pub fn observe(
    cluster: &ValidatedCluster,
    pods: &[Pod],
    known: &BTreeSet<String>,
    now: &Time,
) -> Vec<Loss> {
    let mut out = Vec::new();
    for pod in pods {
        if observe::version_label(pod) != Some(&cluster.version) {
            continue;
        }
        let loss = if observe::is_scheduler(pod) {
            scheduler_kill(pod)
        } else {
            worker_loss(cluster, pod, now)
        };
        if let Some(loss) = loss.filter(|l| !known.contains(&l.key())) {
            out.push(loss);
        }
    }
    out
}

fn worker_loss(cluster: &ValidatedCluster, pod: &Pod, now: &Time) -> Option<Loss> {
    let (group, _) = observe::worker_slot(pod)?;
    if !cluster.groups.iter().any(|g| g.name == group) {
        return None;
    }
    let PodState::Finished { reason, exit_code } = observe::state(pod) else {
        return None;
    };
    let cause = cause(pod, &reason, exit_code)?;
    let termination = observe::termination(pod);
    Some(Loss {
        pod: observe::name(pod).to_owned(),
        uid: observe::uid(pod).to_owned(),
        group: Some(group.to_owned()),
        cause,
        container: termination
            .as_ref()
            .map_or_else(|| "worker".to_owned(), |t| t.container.clone()),
        reason,
        exit_code,
        memory_limit: observe::memory_limit(pod).map(|q| q.0.clone()),
        message: (cause == Cause::Removed)
            .then(|| observe::pod_message(pod).map(str::to_owned))
            .flatten(),
        time: termination
            .and_then(|t| t.finished_at)
            .unwrap_or_else(|| now.clone()),
    })
}

/// The scheduler container's last end, when the kernel killed it for memory. The kubelet
/// restarts it in place, so the kill is known by its finish time (without one it cannot
/// be told from the next and is not reported).
fn scheduler_kill(pod: &Pod) -> Option<Loss> {
    let termination = observe::termination(pod).filter(|t| t.reason == observe::OOM_KILLED)?;
    Some(Loss {
        pod: observe::name(pod).to_owned(),
        uid: observe::uid(pod).to_owned(),
        group: None,
        cause: Cause::OomKilled,
        container: termination.container,
        reason: termination.reason,
        exit_code: Some(termination.exit_code),
        memory_limit: observe::memory_limit(pod).map(|q| q.0.clone()),
        message: None,
        time: termination.finished_at?,
    })
}

/// The OOM kills among `losses` of `group` (`None`: the scheduler's).
pub fn kills<'a>(losses: &'a [Loss], group: Option<&str>) -> Vec<&'a Loss> {
    losses
        .iter()
        .filter(|l| l.cause == Cause::OomKilled && l.group.as_deref() == group)
        .collect()
}

/// `previous` with `kills` added (count and the last `RECENT_KILLS`), with what the
/// scheduler said each was running. `None` while there never was a kill.
pub fn record(
    previous: Option<&OomKills>,
    kills: &[&Loss],
    running: &BTreeMap<String, Running>,
) -> Option<OomKills> {
    if kills.is_empty() {
        return previous.cloned();
    }
    let mut record = previous.cloned().unwrap_or_default();
    for kill in kills {
        record.total += 1;
        let (tasks, running_tasks) = match running.get(&kill.pod) {
            Some(Running::Tasks { keys, total }) => (
                keys.iter()
                    .take(RECORDED_TASKS)
                    .map(|k| clip(k, 200))
                    .collect(),
                Some(*total),
            ),
            Some(Running::UnknownWorker | Running::Unreachable(_)) | None => (Vec::new(), None),
        };
        record.recent.push(OomKill {
            pod: kill.pod.clone(),
            pod_uid: kill.uid.clone(),
            time: kill.time.clone(),
            memory_limit: kill.memory_limit.clone(),
            tasks,
            running_tasks,
        });
    }
    let excess = record.recent.len().saturating_sub(RECENT_KILLS);
    record.recent.drain(..excess);
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{
        cluster, defaults, evicted, finished, memory, restarted_after, time, with_uid,
    };
    use crate::reconcile::{plan::plan, validate::validate};

    fn setup() -> (ValidatedCluster, Vec<Pod>) {
        let mut c = cluster("demo");
        c.spec.workers.resources = Some(memory("256Mi", None));
        let v = validate(&c, &[], &defaults("0.3.0")).unwrap_or_else(|e| unreachable!("{e}"));
        let pods = plan(&v, &[], None)
            .create
            .into_iter()
            .enumerate()
            .map(|(i, p)| with_uid(p, &format!("u{i}")))
            .collect();
        (v, pods)
    }

    /// An OOM-killed worker is one loss naming the pod, its limit and the cause; it is
    /// not new once its uid is known.
    #[test]
    fn an_oom_killed_worker_is_one_loss_until_known() {
        let (c, mut pods) = setup();
        pods[1] = finished(pods[1].clone(), "OOMKilled", 137);
        let losses = observe(&c, &pods, &BTreeSet::new(), &time(5));
        assert_eq!(losses.len(), 1);
        let loss = &losses[0];
        assert_eq!(
            (loss.cause, loss.group.as_deref(), loss.key().as_str()),
            (Cause::OomKilled, Some("default"), "u1")
        );
        assert_eq!(
            loss.describe(),
            "pod demo-default-worker-0: container OOMKilled, exit code 137, memory limit 256Mi"
        );
        let known = BTreeSet::from(["u1".to_owned()]);
        assert!(observe(&c, &pods, &known, &time(6)).is_empty());
    }

    /// A crash is Crashed, an eviction Removed (with the kubelet's message), a clean exit
    /// no loss at all.
    #[test]
    fn crashes_evictions_and_clean_exits() {
        let (c, mut pods) = setup();
        pods[1] = finished(pods[1].clone(), "Error", 1);
        pods[2] = evicted(pods[2].clone());
        let losses = observe(&c, &pods, &BTreeSet::new(), &time(5));
        let causes: Vec<Cause> = losses.iter().map(|l| l.cause).collect();
        assert_eq!(causes, [Cause::Crashed, Cause::Removed]);
        assert_eq!(
            losses[1].describe(),
            "pod demo-default-worker-1: Evicted (The node was low on resource: memory.), \
             memory limit 256Mi"
        );
        pods[1] = finished(pods[1].clone(), "Completed", 0);
        pods[2] = finished(pods[2].clone(), "Completed", 0);
        assert!(observe(&c, &pods, &BTreeSet::new(), &time(5)).is_empty());
    }

    /// The scheduler's container killed for memory and restarted in place is one kill,
    /// known by its finish time: a later kill of the same pod is new again.
    #[test]
    fn scheduler_kills_are_known_by_their_time() {
        let (c, mut pods) = setup();
        pods[0] = restarted_after(pods[0].clone(), "OOMKilled", 100);
        let losses = observe(&c, &pods, &BTreeSet::new(), &time(105));
        assert_eq!(losses.len(), 1);
        assert_eq!(losses[0].group, None);
        let known = BTreeSet::from([losses[0].key()]);
        assert!(observe(&c, &pods, &known, &time(106)).is_empty());
        pods[0] = restarted_after(pods[0].clone(), "OOMKilled", 200);
        assert_eq!(observe(&c, &pods, &known, &time(205)).len(), 1);
    }

    /// The record counts every kill, keeps the last five with their tasks, and its keys
    /// are what makes a kill known.
    #[test]
    fn records_count_and_keep_the_last_five() {
        let (c, mut pods) = setup();
        pods[1] = finished(pods[1].clone(), "OOMKilled", 137);
        let loss = observe(&c, &pods, &BTreeSet::new(), &time(5)).remove(0);
        let running = BTreeMap::from([(
            loss.pod.clone(),
            Running::Tasks {
                keys: vec!["alloc-0".to_owned()],
                total: 1,
            },
        )]);
        let mut record = None;
        for i in 0..7 {
            let kill = Loss {
                uid: format!("k{i}"),
                ..loss.clone()
            };
            record = super::record(record.as_ref(), &[&kill], &running);
        }
        let record = record.unwrap_or_default();
        assert_eq!(record.total, 7);
        let uids: Vec<&str> = record.recent.iter().map(|k| k.pod_uid.as_str()).collect();
        assert_eq!(uids, ["k2", "k3", "k4", "k5", "k6"]);
        assert_eq!(record.recent[4].tasks, ["alloc-0"]);
        assert_eq!(record.recent[4].running_tasks, Some(1));
        let status = ShoalClusterStatus {
            worker_groups: vec![crate::crd::WorkerGroupStatus {
                oom_kills: Some(record),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(recorded_keys(Some(&status)).contains("k6"));
    }

    /// The process's memory of reported kills is bounded and forgets the oldest first.
    #[test]
    fn reported_is_bounded() {
        let mut reported = Reported::default();
        for i in 0..=REMEMBERED {
            reported.remember(format!("k{i}"));
        }
        assert!(!reported.contains("k0") && reported.contains("k1"));
        assert_eq!(reported.keys().count(), REMEMBERED);
    }
}
