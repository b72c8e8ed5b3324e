//! Pure decisions: from a validated cluster, the pods that exist and each group's target
//! count with its named victims, which pods to create, which to delete (and why), which
//! running workers the scheduler must retire first, and which image workers start from.
//! Planning is by count, not by index: live pods stay wherever their index is, new ones
//! take the lowest free indices. No client, no clock. Deletion is always by name, never
//! "some pod"; a running worker is retired only when it is one of the named victims.

use super::build;
use super::observe::{self, PodState};
use super::validate::ValidatedCluster;
use k8s_openapi::api::core::v1::Pod;
use std::collections::{BTreeMap, BTreeSet};

/// Why the operator deletes a pod (also the Event reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
pub enum DeleteReason {
    /// The pod's container ended; a fresh pod replaces it.
    Died,
    /// The kernel killed the container at its memory limit; a fresh pod replaces it.
    OomKilled,
    /// The pod runs another version than the spec asks (upgrade with `Recreate`).
    Upgrade,
    /// Scale-down of a pod that never started (it holds no work).
    ScaleDown,
    /// Scale-down of a worker the scheduler has retired (its data moved).
    Retired,
    /// Its worker group no longer exists.
    GroupRemoved,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub name: String,
    pub reason: DeleteReason,
    /// Detail for the Event (e.g. the exit code).
    pub detail: String,
}

/// A worker pod whose image is not the cluster's pinned one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skew {
    pub pod: String,
    pub image: String,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<Pod>,
    pub delete: Vec<Deletion>,
    /// Running workers above the wanted count: the scheduler retires them, then they go.
    pub retire: Vec<String>,
    /// Worker pods on another image than the pinned one.
    pub skew: Vec<Skew>,
    /// The image new workers start from: the scheduler's digest once known, else the tag.
    pub worker_image: String,
    /// The digest to record in status (when the scheduler runs the wanted version).
    pub image_digest: Option<String>,
}

/// One group's wanted count of live pods and the running workers to retire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupScale {
    pub target: i32,
    /// Named by the scheduler (its `retire_order`); never chosen here.
    pub victims: Vec<String>,
}

/// Targets by group name. A group without an entry wants `replicas` and names no victim.
pub type Scales = BTreeMap<String, GroupScale>;

/// Memory limits (bytes) of new pods raised by `oomPolicy`, by group. A group without an
/// entry gets the spec's limit. Pods that run keep theirs: a limit is never drift.
pub type Raised = BTreeMap<String, u64>;

/// `plan_scaled` with every group at its `replicas`, no victims (no running worker is
/// retired) and the spec's memory limits.
pub fn plan(cluster: &ValidatedCluster, pods: &[Pod], recorded_digest: Option<&str>) -> Plan {
    plan_scaled(
        cluster,
        pods,
        recorded_digest,
        &Scales::new(),
        &Raised::new(),
    )
}

/// `recorded_digest` is `status.imageDigest` if it was recorded for `cluster.version`.
pub fn plan_scaled(
    cluster: &ValidatedCluster,
    pods: &[Pod],
    recorded_digest: Option<&str>,
    scales: &Scales,
    raised: &Raised,
) -> Plan {
    let mut plan = Plan::default();
    let existing: BTreeSet<&str> = pods.iter().map(observe::name).collect();

    let scheduler = pods.iter().find(|p| observe::is_scheduler(p));
    let upgrading = scheduler.is_some_and(|p| observe::version_label(p) != Some(&cluster.version));
    plan.image_digest = recorded_digest.map(str::to_owned).or_else(|| {
        scheduler
            .filter(|p| !upgrading && matches!(observe::state(p), PodState::Running { .. }))
            .and_then(observe::running_image_id)
            .map(str::to_owned)
    });
    plan.worker_image = plan
        .image_digest
        .as_deref()
        .and_then(observe::image_from_id)
        .unwrap_or_else(|| cluster.image_by_tag());

    match scheduler {
        None => plan.create.push(build::scheduler_pod(cluster)),
        Some(pod) => {
            if let Some(deletion) = lifecycle_deletion(cluster, pod) {
                plan.delete.push(deletion);
            }
        }
    }

    // Per group: live pods (pending or running, not being replaced), pending ones by index.
    let mut live: BTreeMap<&str, i32> = BTreeMap::new();
    let mut pending: BTreeMap<&str, Vec<(i32, String)>> = BTreeMap::new();
    for pod in pods.iter().filter(|p| !observe::is_scheduler(p)) {
        let Some((group_name, index)) = observe::worker_slot(pod) else {
            continue;
        };
        let name = observe::name(pod).to_owned();
        let Some(group) = cluster.groups.iter().find(|g| g.name == group_name) else {
            if observe::state(pod) != PodState::Terminating {
                plan.delete.push(Deletion {
                    name,
                    reason: DeleteReason::GroupRemoved,
                    detail: group_name.to_owned(),
                });
            }
            continue;
        };
        if let Some(deletion) = lifecycle_deletion(cluster, pod) {
            plan.delete.push(deletion);
            continue;
        }
        match observe::state(pod) {
            PodState::Terminating | PodState::Finished { .. } => continue,
            PodState::Pending => pending
                .entry(group.name.as_str())
                .or_default()
                .push((index, name)),
            PodState::Running { .. } => {}
        }
        *live.entry(group.name.as_str()).or_default() += 1;
        if let Some(skew) = skew(cluster, &plan, pod) {
            plan.skew.push(skew);
        }
    }

    for group in &cluster.groups {
        let scale = scales
            .get(&group.name)
            .cloned()
            .unwrap_or_else(|| GroupScale {
                target: group.pool.replicas,
                victims: Vec::new(),
            });
        let have = live.get(group.name.as_str()).copied().unwrap_or(0);
        if have > scale.target {
            // Never-started pods first (they hold no work), highest index first.
            let mut waiting = pending.remove(group.name.as_str()).unwrap_or_default();
            waiting.sort();
            let excess = usize::try_from(have - scale.target).unwrap_or(0);
            let dropped: Vec<(i32, String)> = waiting.into_iter().rev().take(excess).collect();
            let left = excess - dropped.len();
            plan.delete
                .extend(dropped.into_iter().map(|(_, name)| Deletion {
                    name,
                    reason: DeleteReason::ScaleDown,
                    detail: String::new(),
                }));
            plan.retire.extend(scale.victims.iter().take(left).cloned());
        } else if have < scale.target && !upgrading {
            // During a Recreate upgrade nothing new starts until the old scheduler is gone.
            let missing = usize::try_from(scale.target - have).unwrap_or(0);
            let free = (0..group.pool.max_replicas.max(scale.target) * 2 + 1)
                .filter(|index| {
                    let name = crate::names::worker_pod(&cluster.name, &group.name, *index);
                    !existing.contains(name.as_str())
                })
                .take(missing)
                .collect::<Vec<_>>();
            let memory = raised.get(&group.name).copied();
            for index in free {
                plan.create.push(build::worker_pod(
                    cluster,
                    group,
                    index,
                    &plan.worker_image,
                    memory,
                ));
            }
        }
    }
    plan
}

/// Deletions every pod is subject to: another version, or a finished container.
fn lifecycle_deletion(cluster: &ValidatedCluster, pod: &Pod) -> Option<Deletion> {
    let name = observe::name(pod).to_owned();
    let state = observe::state(pod);
    if state == PodState::Terminating {
        return None;
    }
    if observe::version_label(pod) != Some(&cluster.version) {
        let detail = format!(
            "version {} -> {}",
            observe::version_label(pod).unwrap_or("unknown"),
            cluster.version
        );
        return Some(Deletion {
            name,
            reason: DeleteReason::Upgrade,
            detail,
        });
    }
    match state {
        PodState::Finished { reason, exit_code } => {
            let detail = match exit_code {
                Some(code) => format!("{reason}, exit code {code}"),
                None => reason.clone(),
            };
            let reason = if reason == observe::OOM_KILLED {
                DeleteReason::OomKilled
            } else {
                DeleteReason::Died
            };
            Some(Deletion {
                name,
                reason,
                detail,
            })
        }
        _ => None,
    }
}

/// A worker whose spec or running image differs from the pinned image. Only the image
/// counts: a pod created before `oomPolicy` raised its group's memory limit (or before
/// any other spec change) keeps running as it is.
fn skew(cluster: &ValidatedCluster, plan: &Plan, pod: &Pod) -> Option<Skew> {
    let spec_image = observe::spec_image(pod)?;
    let pinned_id = plan.image_digest.as_deref();
    let matches_spec = spec_image == plan.worker_image || spec_image == cluster.image_by_tag();
    let matches_running = match (observe::running_image_id(pod), pinned_id) {
        (Some(running), Some(pinned)) => running == pinned,
        _ => true,
    };
    (!matches_spec || !matches_running).then(|| Skew {
        pod: observe::name(pod).to_owned(),
        image: spec_image.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{cluster, defaults, finished, running, with_version};
    use crate::reconcile::validate::validate;

    fn validated(replicas: i32) -> ValidatedCluster {
        let mut c = cluster("demo");
        c.spec.workers.replicas = replicas;
        validate(&c, &[], &defaults("0.3.0")).expect("valid")
    }

    fn names(pods: &[Pod]) -> Vec<&str> {
        pods.iter().map(observe::name).collect()
    }

    /// An empty namespace gets the scheduler and every wanted worker, by stable name.
    #[test]
    fn creates_scheduler_and_workers() {
        let plan = plan(&validated(2), &[], None);
        assert_eq!(
            names(&plan.create),
            [
                "demo-scheduler",
                "demo-default-worker-0",
                "demo-default-worker-1"
            ]
        );
        assert!(plan.delete.is_empty());
        assert_eq!(plan.worker_image, "shoal.dev/shoal:0.3.0");
    }

    /// Re-planning over what the first plan created creates nothing twice.
    #[test]
    fn planning_is_idempotent() {
        let c = validated(2);
        let first = plan(&c, &[], None);
        let second = plan(&c, &first.create, None);
        assert!(second.create.is_empty(), "{:?}", names(&second.create));
        assert!(second.delete.is_empty());
    }

    /// A bare image id (no registry digest) is recorded, but workers start from the tag.
    #[test]
    fn bare_image_ids_are_recorded_and_workers_use_the_tag() {
        let c = validated(1);
        let scheduler = running(build::scheduler_pod(&c), "sha256:feed");
        let plan = plan(&c, &[scheduler], None);
        assert_eq!(plan.image_digest.as_deref(), Some("sha256:feed"));
        assert_eq!(plan.worker_image, "shoal.dev/shoal:0.3.0");
    }

    /// Once the scheduler runs, its digest is recorded and later workers start from it.
    #[test]
    fn workers_start_from_the_scheduler_digest() {
        let c = validated(1);
        let scheduler = running(build::scheduler_pod(&c), "shoal.dev/shoal@sha256:feed");
        let plan = plan(&c, &[scheduler], None);
        assert_eq!(
            plan.image_digest.as_deref(),
            Some("shoal.dev/shoal@sha256:feed")
        );
        assert_eq!(plan.worker_image, "shoal.dev/shoal@sha256:feed");
        assert_eq!(
            plan.create[0].spec.as_ref().expect("spec").containers[0]
                .image
                .as_deref(),
            Some("shoal.dev/shoal@sha256:feed")
        );
    }

    fn scaled(target: i32, victims: &[&str]) -> Scales {
        Scales::from([(
            "default".to_owned(),
            GroupScale {
                target,
                victims: victims.iter().map(|v| (*v).to_owned()).collect(),
            },
        )])
    }

    /// Scale-down deletes never-started pods first, then retires exactly the named victims.
    #[test]
    fn scale_down_retires_running_and_deletes_pending() {
        let big = validated(3);
        let mut pods = plan(&big, &[], None).create;
        pods[3] = running(pods[3].clone(), "sha256:x");
        pods[1] = running(pods[1].clone(), "sha256:x");
        let plan = plan_scaled(
            &big,
            &pods,
            None,
            &scaled(1, &["demo-default-worker-2", "demo-default-worker-0"]),
            &Raised::new(),
        );
        assert_eq!(plan.retire, ["demo-default-worker-2"]);
        assert_eq!(plan.delete.len(), 1);
        assert_eq!(plan.delete[0].name, "demo-default-worker-1");
        assert_eq!(plan.delete[0].reason, DeleteReason::ScaleDown);
    }

    /// Without named victims, running workers above the target are never touched.
    #[test]
    fn no_victims_means_no_running_worker_goes() {
        let c = validated(3);
        let pods: Vec<Pod> = plan(&c, &[], None)
            .create
            .into_iter()
            .map(|p| running(p, "sha256:x"))
            .collect();
        let plan = plan_scaled(&c, &pods, None, &scaled(1, &[]), &Raised::new());
        assert!(plan.retire.is_empty() && plan.delete.is_empty() && plan.create.is_empty());
    }

    /// A hole left by a retired worker is kept while the count holds, and filled first when it grows.
    #[test]
    fn holes_are_kept_then_filled_at_the_lowest_free_index() {
        let c = validated(4);
        let mut pods: Vec<Pod> = plan(&c, &[], None).create;
        pods.remove(2); // demo-default-worker-1 was retired
        let same = plan_scaled(&c, &pods, None, &scaled(3, &[]), &Raised::new());
        assert!(same.create.is_empty() && same.delete.is_empty() && same.retire.is_empty());
        let grown = plan_scaled(&c, &pods, None, &scaled(5, &[]), &Raised::new());
        assert_eq!(
            names(&grown.create),
            ["demo-default-worker-1", "demo-default-worker-4"]
        );
    }

    /// A dead pod in a hole-y group is replaced at a free index; its own name waits until it is gone.
    #[test]
    fn dead_pod_is_replaced_at_a_free_index() {
        let c = validated(2);
        let mut pods: Vec<Pod> = plan(&c, &[], None).create;
        pods[2] = finished(pods[2].clone(), "Error", 1);
        let plan = plan(&c, &pods, None);
        assert_eq!(plan.delete[0].name, "demo-default-worker-1");
        assert_eq!(names(&plan.create), ["demo-default-worker-2"]);
    }

    /// A dead worker is replaced; an OOM-killed one is named as such.
    #[test]
    fn dead_workers_are_replaced_and_oom_is_named() {
        let c = validated(2);
        let mut pods = plan(&c, &[], None).create;
        pods[1] = finished(pods[1].clone(), "OOMKilled", 137);
        pods[2] = finished(pods[2].clone(), "Error", 1);
        let plan = plan(&c, &pods, None);
        let reasons: Vec<DeleteReason> = plan.delete.iter().map(|d| d.reason).collect();
        assert_eq!(reasons, [DeleteReason::OomKilled, DeleteReason::Died]);
        assert_eq!(plan.delete[0].detail, "OOMKilled, exit code 137");
    }

    /// A version change deletes every pod of the old version and starts nothing until the old scheduler is gone.
    #[test]
    fn recreate_upgrade_deletes_old_pods_first() {
        let c = validated(1);
        let old: Vec<Pod> = plan(&c, &[], None)
            .create
            .into_iter()
            .map(|p| with_version(p, "0.2.0"))
            .collect();
        let plan = plan(&c, &old, None);
        assert!(plan.create.is_empty());
        assert_eq!(plan.delete.len(), 2);
        assert!(
            plan.delete
                .iter()
                .all(|d| d.reason == DeleteReason::Upgrade)
        );
    }

    /// After oomPolicy raised a group's limit, the replacement of the killed pod gets the
    /// raised limit while running pods on the old limit are neither skew nor replaced.
    #[test]
    fn raised_memory_is_no_drift() {
        let mut c = cluster("demo");
        c.spec.workers.replicas = 2;
        c.spec.workers.resources = Some(crate::fixtures::memory("256Mi", None));
        let c = validate(&c, &[], &defaults("0.3.0")).expect("valid");
        let mut pods: Vec<Pod> = plan(&c, &[], None)
            .create
            .into_iter()
            .map(|p| crate::fixtures::ready(p, "shoal.dev/shoal@sha256:d"))
            .collect();
        pods[2] = finished(pods[2].clone(), "OOMKilled", 137);
        let raised = Raised::from([("default".to_owned(), 384 << 20)]);
        let plan = plan_scaled(&c, &pods, None, &Scales::new(), &raised);
        assert!(plan.skew.is_empty(), "{:?}", plan.skew);
        let deleted: Vec<&str> = plan.delete.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(deleted, ["demo-default-worker-1"]);
        assert_eq!(names(&plan.create), ["demo-default-worker-2"]);
        let limit = plan.create[0].spec.as_ref().expect("spec").containers[0]
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            .map(|q| q.0.clone());
        assert_eq!(limit.as_deref(), Some("384Mi"));
    }

    /// A worker whose image was changed by hand is reported as skew, not silently accepted.
    #[test]
    fn edited_worker_image_is_skew() {
        let c = validated(1);
        let mut pods = plan(&c, &[], None).create;
        if let Some(spec) = pods[1].spec.as_mut() {
            spec.containers[0].image = Some("shoal.dev/shoal:0.0.9".to_owned());
        }
        let plan = plan(&c, &pods, None);
        assert_eq!(
            plan.skew,
            [Skew {
                pod: "demo-default-worker-0".to_owned(),
                image: "shoal.dev/shoal:0.0.9".to_owned()
            }]
        );
    }
}
