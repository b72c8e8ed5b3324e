//! The autoscaling estimate: how many workers each worker group should have for the work
//! queued and running now, why, and in which order its workers should go when it shrinks.
//!
//! Pure: a function of the core's state, the groups and the target duration. Not here:
//! the operator's bounds and cool-downs (it applies them), idle time (needs a clock: the
//! scheduler measures it), or starting and stopping workers.

use std::collections::HashMap;

use crate::core::Core;
use crate::ids::{PrefixId, WorkerId};
use crate::resources::Resources;
use crate::task::TaskState;

/// The group name unannotated tasks count toward (else the first group offering nothing).
pub const DEFAULT_GROUP: &str = "default";

/// A group above this fraction of its memory wants workers until it is back under it.
pub const MEMORY_FRACTION: f64 = 0.6;

/// One worker group as the operator runs it: what each of its workers offers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupSpec {
    pub name: String,
    /// Cores of each worker (0: unknown; the group's connected workers tell, else 1).
    pub cores: u32,
    /// Memory limit of each worker (0: unknown; the connected workers tell).
    pub memory_limit: u64,
    pub resources: Resources,
}

/// The estimate for one group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupEstimate {
    pub name: String,
    pub desired_workers: u32,
    /// Why, in one line (the dominant prefix of the work, the arithmetic).
    pub reason: String,
    /// Active workers of the group, idle first, then least unique data, then by name.
    pub retire_order: Vec<String>,
    /// Connected workers of the group (active and retiring).
    pub workers: u32,
}

/// Work that one group should absorb.
#[derive(Default)]
struct Demand {
    tasks: u64,
    work_us: f64,
    by_prefix: HashMap<PrefixId, f64>,
}

impl Core {
    /// One group per distinct group of the connected workers (what each offers taken from
    /// its first worker, cores and memory the largest), "default" first, then by name; one
    /// "default" group when no worker is connected, so queued work asks for a first one.
    pub fn groups_of_workers(&self) -> Vec<GroupSpec> {
        let mut groups: Vec<GroupSpec> = Vec::new();
        for (_, w) in self.workers_iter() {
            match groups.iter_mut().find(|g| g.name == w.group) {
                Some(g) => {
                    g.cores = g.cores.max(w.cores);
                    g.memory_limit = g.memory_limit.max(w.memory_limit);
                }
                None => groups.push(GroupSpec {
                    name: w.group.clone(),
                    cores: w.cores,
                    memory_limit: w.memory_limit,
                    resources: w.resources.clone(),
                }),
            }
        }
        groups.sort_by(|a, b| {
            (a.name != DEFAULT_GROUP, &a.name).cmp(&(b.name != DEFAULT_GROUP, &b.name))
        });
        if groups.is_empty() {
            groups.push(GroupSpec {
                name: DEFAULT_GROUP.into(),
                ..GroupSpec::default()
            });
        }
        groups
    }

    /// Index of the group that absorbs tasks asking for `request` (`None`: no group can).
    pub fn group_for(groups: &[GroupSpec], request: Option<&Resources>) -> Option<usize> {
        match request {
            Some(r) if !r.is_empty() => groups.iter().position(|g| g.resources.satisfies(r)),
            _ => groups
                .iter()
                .position(|g| g.name == DEFAULT_GROUP)
                .or_else(|| groups.iter().position(|g| g.resources.is_empty())),
        }
    }

    /// The estimated duration of one task of a prefix: its average, else the global one.
    fn estimated_us(&self, prefix: PrefixId) -> f64 {
        self.prefixes
            .duration_us(prefix)
            .unwrap_or(self.task_duration_us)
    }

    /// Workers each group should have to finish its share of the ready and running tasks
    /// within `target_duration_s`, kept up for memory and for results clients still want.
    pub fn adaptive_target(
        &self,
        groups: &[GroupSpec],
        target_duration_s: f64,
    ) -> Vec<GroupEstimate> {
        let target_us = if target_duration_s > 0.0 {
            target_duration_s * 1e6
        } else {
            5e6
        };
        let mut demand: Vec<Demand> = groups.iter().map(|_| Demand::default()).collect();
        let mut unique_bytes: HashMap<WorkerId, u64> = HashMap::new();
        let mut holds_wanted: Vec<bool> = vec![false; self.workers.len()];
        let default_group = Self::group_for(groups, None);
        for (id, t) in self.tasks_iter() {
            match t.state {
                TaskState::Ready | TaskState::Assigned(_) => {
                    let request = self.resources_of(id);
                    let g = match request {
                        Some(r) => Self::group_for(groups, Some(r)),
                        None => default_group,
                    };
                    let Some(g) = g else { continue };
                    let prefix = self.task_prefix[id.index()];
                    let us = self.estimated_us(prefix);
                    let d = &mut demand[g];
                    d.tasks += 1;
                    d.work_us += us;
                    *d.by_prefix.entry(prefix).or_default() += us;
                }
                TaskState::Memory(primary) => {
                    let holders = self.holders(id);
                    if holders.len() == 1 {
                        *unique_bytes.entry(primary).or_default() += t.size;
                    }
                    if t.is_wanted() {
                        for h in holders {
                            holds_wanted[h.index()] = true;
                        }
                    }
                }
                _ => {}
            }
        }
        groups
            .iter()
            .zip(demand)
            .map(|(group, d)| {
                self.estimate_group(group, &d, target_us, &unique_bytes, &holds_wanted)
            })
            .collect()
    }

    fn estimate_group(
        &self,
        group: &GroupSpec,
        d: &Demand,
        target_us: f64,
        unique_bytes: &HashMap<WorkerId, u64>,
        holds_wanted: &[bool],
    ) -> GroupEstimate {
        let members: Vec<(WorkerId, &crate::worker::Worker)> = self
            .workers_iter()
            .filter(|(_, w)| w.group == group.name)
            .collect();
        let cores_per_worker = if group.cores > 0 {
            group.cores
        } else {
            members.iter().map(|(_, w)| w.cores).max().unwrap_or(1)
        }
        .max(1);
        let mut reasons = Vec::new();
        let mut desired = 0u64;
        if d.tasks > 0 {
            let cores = ((d.work_us / target_us).ceil() as u64).clamp(1, d.tasks);
            let workers = cores.div_ceil(u64::from(cores_per_worker));
            let (prefix, prefix_us) = d
                .by_prefix
                .iter()
                .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
                .map_or((PrefixId(0), 0.0), |(p, us)| (*p, *us));
            let share = if d.work_us > 0.0 {
                prefix_us / d.work_us * 100.0
            } else {
                100.0
            };
            reasons.push(format!(
                "{} ready+running tasks x {} ({} {share:.0}%) / {} target = {cores} cores, \
                 {cores_per_worker} per worker -> {workers} workers",
                d.tasks,
                seconds(d.work_us / d.tasks as f64),
                self.prefixes.name(prefix),
                seconds(target_us),
            ));
            desired = workers;
        }
        let stored: u64 = members.iter().map(|(_, w)| w.stored_bytes).sum();
        let per_worker_memory = if group.memory_limit > 0 {
            group.memory_limit
        } else {
            members
                .iter()
                .map(|(_, w)| w.memory_limit)
                .max()
                .unwrap_or(0)
        };
        let limit_sum: u64 = members.iter().map(|(_, w)| w.memory_limit).sum();
        if per_worker_memory > 0 && stored as f64 > MEMORY_FRACTION * limit_sum as f64 {
            let needed =
                (stored as f64 / (MEMORY_FRACTION * per_worker_memory as f64)).ceil() as u64;
            reasons.push(format!(
                "{} stored > {:.0}% of {} memory -> {needed} workers",
                bytes(stored),
                MEMORY_FRACTION * 100.0,
                bytes(limit_sum),
            ));
            desired = desired.max(needed);
        }
        if members.iter().any(|(id, _)| holds_wanted[id.index()]) && desired == 0 {
            reasons.push("holds results a client still wants -> 1 worker".into());
            desired = 1;
        }
        if reasons.is_empty() {
            reasons.push("no queued work, no results wanted -> 0 workers".into());
        }
        let mut order: Vec<(bool, u64, &str)> = members
            .iter()
            .filter(|(_, w)| w.is_active())
            .map(|(id, w)| {
                (
                    w.assigned > 0,
                    unique_bytes.get(id).copied().unwrap_or(0),
                    w.name.as_str(),
                )
            })
            .collect();
        order.sort_unstable();
        GroupEstimate {
            name: group.name.clone(),
            desired_workers: desired.min(u64::from(u32::MAX)) as u32,
            reason: reasons.join("; "),
            retire_order: order.into_iter().map(|(_, _, n)| n.to_string()).collect(),
            workers: members.len() as u32,
        }
    }
}

/// `1.8 s`, `350 ms`, `40 us`.
fn seconds(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.1} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.0} ms", us / 1e3)
    } else {
        format!("{us:.0} us")
    }
}

/// `1.5 GiB`, `12 MiB`, `300 B`.
fn bytes(n: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    let f = n as f64;
    if f >= GIB {
        format!("{:.1} GiB", f / GIB)
    } else if f >= MIB {
        format!("{:.0} MiB", f / MIB)
    } else {
        format!("{n} B")
    }
}
