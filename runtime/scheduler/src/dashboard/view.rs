//! The dashboard's data, aggregated server-side into frames: once a second (while someone
//! watches) the rows that changed since the previous frame — task prefixes' progress,
//! workers, new size samples and errors, and the task stream coalesced into bars (one per
//! worker and prefix run, never one per task) — become one JSON delta shared by every
//! viewer. A viewer's cursor is (instance, frame): it gets the deltas it missed, or a full
//! snapshot when it is new, from another scheduler instance, or too far behind. So the cost
//! is per frame, not per viewer, and updates stay small with many workers and tasks.
//! Not here: HTTP, authentication, or recording what ran (`record.rs`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use shoal_core::{Core, PrefixId, StateCounts, WorkerId};

use super::record::{Recorder, TaskRun};

/// Frames kept for viewers that fall behind (a reconnect within this many seconds resumes
/// with deltas).
const KEPT_FRAMES: usize = 30;
/// Bars at most per delta, and in a snapshot: the newest are kept.
const MAX_BARS: usize = 600;
/// Most recent tasks a snapshot's task stream is drawn from.
const SNAPSHOT_TASKS: u64 = 20_000;
/// Tasks on one worker of one prefix closer than this merge into one bar.
const MERGE_GAP_US: u64 = 2_000;

/// Where a viewer is: the scheduler instance and the last frame it applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub instance: u64,
    pub frame: u64,
}

impl Cursor {
    /// `instance-frame` in hex, as the page and `Last-Event-ID` carry it.
    pub fn parse(text: &str) -> Option<Cursor> {
        let (i, f) = text.trim().split_once('-')?;
        Some(Cursor {
            instance: u64::from_str_radix(i, 16).ok()?,
            frame: u64::from_str_radix(f, 16).ok()?,
        })
    }

    pub fn encode(self) -> String {
        format!("{:x}-{:x}", self.instance, self.frame)
    }
}

/// Cluster-wide figures the actor knows beside the core.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub name: String,
    pub version: String,
    pub clients: u32,
    pub idle_seconds: f64,
    pub desired: u32,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq)]
struct WorkerRow {
    group: String,
    state: &'static str,
    cores: u32,
    memory_limit_mib: u64,
    memory_used_mib: u64,
    stored_mib: u64,
    spilled_mib: u64,
    /// Tenths of a core.
    cpu_tenths: u32,
    running: u32,
    assigned: u32,
}

impl WorkerRow {
    /// Whether the row changed enough to send: its group, state, cores or limit; a task
    /// count by a tenth (or 2), or to or from zero; memory, stored or spilled bytes by 1 %
    /// of the limit (at least 16 MiB); CPU by 0.2 cores.
    fn moved_from(&self, old: &WorkerRow) -> bool {
        let step = (self.memory_limit_mib / 100).max(16);
        let far = |a: u64, b: u64| a.abs_diff(b) >= step;
        (
            self.group.as_str(),
            self.state,
            self.cores,
            self.memory_limit_mib,
        ) != (
            old.group.as_str(),
            old.state,
            old.cores,
            old.memory_limit_mib,
        ) || counted(self.running, old.running)
            || counted(self.assigned, old.assigned)
            || far(self.memory_used_mib, old.memory_used_mib)
            || far(self.stored_mib, old.stored_mib)
            || far(self.spilled_mib, old.spilled_mib)
            || self.cpu_tenths.abs_diff(old.cpu_tenths) >= 2
    }

    fn json(&self, name: &str) -> Value {
        json!({
            "name": name, "group": self.group, "state": self.state, "cores": self.cores,
            "memory_limit_mib": self.memory_limit_mib, "memory_used_mib": self.memory_used_mib,
            "stored_mib": self.stored_mib, "spilled_mib": self.spilled_mib,
            "cpu": f64::from(self.cpu_tenths) / 10.0, "running": self.running,
            "assigned": self.assigned,
        })
    }
}

/// One frame's delta, encoded once.
struct Frame {
    frame: u64,
    json: Arc<str>,
}

pub struct Views {
    instance: u64,
    frame: u64,
    prefixes: Vec<(Value, u64)>,
    workers: BTreeMap<Arc<str>, WorkerRow>,
    /// Task, sample and error sequence numbers the last frame reached.
    tasks_seen: u64,
    samples_seen: u64,
    errors_seen: u64,
    frames: VecDeque<Frame>,
    /// The snapshot of the current frame, built when a new viewer asks.
    snapshot: Option<(u64, Arc<str>)>,
    /// Time spent building frames and snapshots (the dashboard's cost in the scheduler).
    pub busy: std::time::Duration,
}

impl Views {
    pub fn new(instance: u64) -> Self {
        Views {
            instance,
            frame: 0,
            prefixes: Vec::new(),
            workers: BTreeMap::new(),
            tasks_seen: 0,
            samples_seen: 0,
            errors_seen: 0,
            frames: VecDeque::new(),
            snapshot: None,
            busy: std::time::Duration::ZERO,
        }
    }

    pub fn cursor(&self) -> Cursor {
        Cursor {
            instance: self.instance,
            frame: self.frame,
        }
    }

    /// Builds the next frame: what changed since the previous one.
    pub fn advance(
        &mut self,
        core: &Core,
        rec: &Recorder,
        summary: &Summary,
        hidden: &dyn Fn(WorkerId) -> bool,
    ) {
        let started = std::time::Instant::now();
        self.frame += 1;
        let frame = self.frame;
        let mut changed_prefixes = Vec::new();
        for (i, (name, stats)) in core.prefix_stats().enumerate() {
            let row = prefix_row(name, stats.counts, stats);
            match self.prefixes.get_mut(i) {
                Some((old, version)) if *old != row => {
                    *old = row.clone();
                    *version = frame;
                    changed_prefixes.push(row);
                }
                Some(_) => {}
                None => {
                    self.prefixes.push((row.clone(), frame));
                    changed_prefixes.push(row);
                }
            }
        }
        let now = worker_rows(core, rec, hidden);
        let mut changed_workers = Vec::new();
        let mut now = now;
        for (name, row) in now.iter_mut() {
            match self.workers.get(name) {
                // Small drifts are not news: the viewer keeps the row it has, and the
                // drift is sent once it adds up.
                Some(old) if !row.moved_from(old) => *row = old.clone(),
                _ => changed_workers.push(row.json(name)),
            }
        }
        let removed: Vec<&str> = self
            .workers
            .keys()
            .filter(|n| !now.contains_key(*n))
            .map(|n| &**n)
            .collect();
        let (new_tasks, _) = rec.tasks.since(self.tasks_seen);
        let bars = bars(core, rec, new_tasks);
        let (samples, _) = rec.samples.since(self.samples_seen);
        let (errors, _) = rec.errors.since(self.errors_seen);
        let delta = json!({
            "cursor": self.cursor().encode(),
            "full": false,
            "cluster": cluster(core, summary, &now),
            "prefixes": changed_prefixes,
            "workers": changed_workers,
            "workers_removed": removed,
            "bars": bars,
            "samples": samples.map(sample_json).collect::<Vec<_>>(),
            "errors": errors.map(|e| error_json(core, rec, e)).collect::<Vec<_>>(),
        });
        self.workers = now;
        self.tasks_seen = rec.tasks.end();
        self.samples_seen = rec.samples.end();
        self.errors_seen = rec.errors.end();
        self.frames.push_back(Frame {
            frame,
            json: delta.to_string().into(),
        });
        if self.frames.len() > KEPT_FRAMES {
            self.frames.pop_front();
        }
        self.snapshot = None;
        self.busy += started.elapsed();
    }

    /// What a viewer at `since` needs: the deltas after its frame, or one full snapshot.
    /// Empty when it is up to date.
    pub fn update(
        &mut self,
        since: Option<Cursor>,
        core: &Core,
        rec: &Recorder,
        summary: &Summary,
    ) -> Vec<(Cursor, Arc<str>)> {
        if let Some(c) = since
            && c.instance == self.instance
            && c.frame <= self.frame
            && (c.frame == self.frame
                || self.frames.front().is_some_and(|f| f.frame <= c.frame + 1))
        {
            return self
                .frames
                .iter()
                .filter(|f| f.frame > c.frame)
                .map(|f| {
                    let cursor = Cursor {
                        instance: self.instance,
                        frame: f.frame,
                    };
                    (cursor, Arc::clone(&f.json))
                })
                .collect();
        }
        vec![(self.cursor(), self.snapshot(core, rec, summary))]
    }

    fn snapshot(&mut self, core: &Core, rec: &Recorder, summary: &Summary) -> Arc<str> {
        if let Some((frame, json)) = &self.snapshot
            && *frame == self.frame
        {
            return Arc::clone(json);
        }
        let started = std::time::Instant::now();
        // The snapshot's task stream: bars of the most recent tasks.
        let (recent, _) = rec
            .tasks
            .since(rec.tasks.end().saturating_sub(SNAPSHOT_TASKS));
        let snapshot = json!({
            "cursor": self.cursor().encode(),
            "full": true,
            "cluster": cluster(core, summary, &self.workers),
            "prefixes": self.prefixes.iter().map(|(row, _)| row).collect::<Vec<_>>(),
            "workers": self.workers.iter().map(|(n, row)| row.json(n)).collect::<Vec<_>>(),
            "workers_removed": [],
            "bars": bars(core, rec, recent),
            "samples": rec.samples.iter().map(sample_json).collect::<Vec<_>>(),
            "errors": rec.errors.iter().map(|e| error_json(core, rec, e)).collect::<Vec<_>>(),
        })
        .to_string();
        let json: Arc<str> = snapshot.into();
        self.snapshot = Some((self.frame, Arc::clone(&json)));
        self.busy += started.elapsed();
        json
    }
}

/// A task count moved enough to show: to or from zero, or by a tenth (at least 2).
fn counted(now: u32, before: u32) -> bool {
    (now == 0) != (before == 0) || now.abs_diff(before) >= (before / 10).max(2)
}

fn prefix_row(name: &str, c: StateCounts, stats: &shoal_core::PrefixStats) -> Value {
    json!({
        "name": name,
        "done": stats.done,
        "memory": c.memory,
        "running": c.assigned,
        "queued": c.waiting + c.ready,
        "erred": c.erred,
        "seconds": stats.duration_us_total as f64 / 1e6,
        "bytes": stats.bytes_total,
        "finished_total": stats.finished_total,
    })
}

fn worker_rows(
    core: &Core,
    rec: &Recorder,
    hidden: &dyn Fn(WorkerId) -> bool,
) -> BTreeMap<Arc<str>, WorkerRow> {
    core.workers_iter()
        .filter(|(id, _)| !hidden(*id))
        .map(|(id, w)| {
            let live = rec.liveness(id);
            let state = if w.paused && w.is_active() {
                "paused"
            } else if w.is_active() {
                "running"
            } else {
                "retiring"
            };
            let row = WorkerRow {
                group: w.group.clone(),
                state,
                cores: w.cores,
                memory_limit_mib: w.memory_limit >> 20,
                memory_used_mib: w.memory_used >> 20,
                stored_mib: w.stored_bytes >> 20,
                spilled_mib: w.spilled_bytes >> 20,
                cpu_tenths: (live.cpu * 10.0).round() as u32,
                running: live.running,
                assigned: w.assigned,
            };
            (rec.name(id), row)
        })
        .collect()
}

fn cluster(core: &Core, summary: &Summary, workers: &BTreeMap<Arc<str>, WorkerRow>) -> Value {
    let c = core.counts();
    json!({
        "name": summary.name,
        "version": summary.version,
        "clients": summary.clients,
        "idle_seconds": summary.idle_seconds,
        "desired": summary.desired,
        "reason": summary.reason,
        "workers": workers.len(),
        "cores": workers.values().map(|w| w.cores).sum::<u32>(),
        "memory_limit_mib": workers.values().map(|w| w.memory_limit_mib).sum::<u64>(),
        "memory_used_mib": workers.values().map(|w| w.memory_used_mib).sum::<u64>(),
        "graph": {
            "tasks": core.task_count(),
            "waiting": c.waiting, "ready": c.ready, "running": c.assigned,
            "memory": c.memory, "released": c.released, "erred": c.erred,
            "finished_total": core.finished_total(),
            "prefixes": core.prefix_stats().count(),
        },
    })
}

/// Tasks as bars `[worker, prefix, start_ms, stop_ms, tasks, ok]`: consecutive tasks of a
/// prefix on a worker merge while the gaps between them stay under [`MERGE_GAP_US`].
fn bars<'a>(core: &Core, rec: &Recorder, tasks: impl Iterator<Item = &'a TaskRun>) -> Vec<Value> {
    struct Bar {
        start: u64,
        stop: u64,
        count: u64,
    }
    type Lane = (WorkerId, PrefixId, bool);
    let mut open: HashMap<Lane, Bar> = HashMap::new();
    let mut done: Vec<(Lane, Bar)> = Vec::new();
    for t in tasks {
        let lane = (t.worker, t.prefix, t.ok);
        match open.get_mut(&lane) {
            Some(bar) if t.start_us <= bar.stop + MERGE_GAP_US => {
                bar.stop = bar.stop.max(t.stop_us);
                bar.start = bar.start.min(t.start_us);
                bar.count += 1;
            }
            _ => {
                let bar = Bar {
                    start: t.start_us,
                    stop: t.stop_us,
                    count: 1,
                };
                if let Some(old) = open.insert(lane, bar) {
                    done.push((lane, old));
                }
            }
        }
    }
    done.extend(open);
    done.sort_by_key(|(_, b)| b.stop);
    let skip = done.len().saturating_sub(MAX_BARS);
    let names = core.prefix_stats().map(|(n, _)| n).collect::<Vec<&str>>();
    done.into_iter()
        .skip(skip)
        .map(|((worker, prefix, ok), b)| {
            json!([
                &*rec.name(worker),
                names.get(prefix.index()).copied().unwrap_or("Other"),
                b.start as f64 / 1e3,
                b.stop as f64 / 1e3,
                b.count,
                ok
            ])
        })
        .collect()
}

fn sample_json(s: &super::record::SizeSample) -> Value {
    json!([
        s.at_us as f64 / 1e3,
        s.workers,
        s.cores,
        s.desired,
        s.reason
    ])
}

fn error_json(core: &Core, rec: &Recorder, e: &super::record::ErrorSeen) -> Value {
    let prefix = core
        .prefix_stats()
        .nth(e.prefix.index())
        .map_or("Other", |(n, _)| n);
    json!({
        "at_ms": e.at_us as f64 / 1e3, "key": &*e.key, "prefix": prefix,
        "worker": &*rec.name(e.worker), "kind": e.kind, "message": e.message,
        "traceback": e.traceback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(memory_used_mib: u64, assigned: u32) -> WorkerRow {
        WorkerRow {
            group: "default".into(),
            state: "running",
            cores: 1,
            memory_limit_mib: 4096,
            memory_used_mib,
            stored_mib: 0,
            spilled_mib: 0,
            cpu_tenths: 10,
            running: 1,
            assigned,
        }
    }

    /// Small drifts of a worker's figures are not sent; a change of state, a count going
    /// to zero and drifts past their step are.
    #[test]
    fn only_worker_changes_that_matter_are_sent() {
        let old = row(1000, 20);
        assert!(!row(1030, 21).moved_from(&old), "30 MiB of 4 GiB, one task");
        assert!(row(1041, 20).moved_from(&old), "past 1 % of the limit");
        assert!(row(1000, 17).moved_from(&old), "a tenth of the tasks");
        assert!(row(1000, 0).moved_from(&row(1000, 1)), "to zero");
        let mut paused = row(1000, 20);
        paused.state = "paused";
        assert!(paused.moved_from(&old));
    }

    /// Cursors survive the round trip through their text form; junk is no cursor.
    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            instance: 0xdead_beef,
            frame: 42,
        };
        assert_eq!(Cursor::parse(&c.encode()), Some(c));
        assert_eq!(Cursor::parse("nope"), None);
    }
}
