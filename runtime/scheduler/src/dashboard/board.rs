//! The dashboard state the actor owns: it records what the workers report (before the
//! core forgets tasks), samples the cluster's size once a second, and builds frames only
//! while someone watches. Time comes in as Unix microseconds and `Instant`s from the
//! actor. Not here: HTTP (`http.rs`) or the JSON itself (`view.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_core::{Core, TaskError, TaskRef, WorkerId};
use shoal_proto::v1;

use super::record::{ErrorSeen, Recorder, SizeSample, TaskRun};
use super::view::{Cursor, Summary, Views};

/// Frames are built while a viewer asked within this long.
const WATCHED_FOR: Duration = Duration::from_secs(10);

pub struct Board {
    pub record: Recorder,
    views: Views,
    last_view: Option<Instant>,
    last_frame: Option<Instant>,
}

impl Board {
    pub fn new(instance: u64) -> Self {
        Board {
            record: Recorder::default(),
            views: Views::new(instance),
            last_view: None,
            last_frame: None,
        }
    }

    /// Seconds spent building frames and snapshots so far.
    pub fn busy_seconds(&self) -> f64 {
        self.views.busy.as_secs_f64()
    }

    /// A task finished (`ok`) or failed on `worker`, reported at `now_us`. Call before the
    /// core applies it (the core may forget the task).
    pub fn task_ended(
        &mut self,
        core: &Core,
        worker: WorkerId,
        task: TaskRef,
        run: (u64, u64, u64),
        ok: bool,
    ) {
        let (now_us, duration_us, nbytes) = run;
        let Some(t) = core.resolve(task) else {
            return;
        };
        self.record.task(TaskRun {
            key: t.key.clone(),
            prefix: core.prefix_of(task.id),
            worker,
            start_us: now_us.saturating_sub(duration_us),
            stop_us: now_us,
            nbytes,
            ok,
        });
    }

    pub fn task_failed(
        &mut self,
        core: &Core,
        worker: WorkerId,
        task: TaskRef,
        now_us: u64,
        error: &TaskError,
    ) {
        let Some(t) = core.resolve(task) else {
            return;
        };
        self.record.error(ErrorSeen {
            at_us: now_us,
            key: t.key.clone(),
            prefix: core.prefix_of(task.id),
            worker,
            kind: error.kind.clone(),
            message: error.message.clone(),
            traceback: error.detail.clone(),
        });
        self.task_ended(core, worker, task, (now_us, 0, 0), false);
    }

    /// Once a second: a size sample, and a frame while watched.
    pub fn tick(
        &mut self,
        core: &Core,
        summary: &Summary,
        now_us: u64,
        now: Instant,
        hidden: &dyn Fn(WorkerId) -> bool,
    ) {
        if self.record.sample_due(now_us) {
            let workers: Vec<_> = core
                .workers_iter()
                .filter(|(id, w)| w.is_active() && !hidden(*id))
                .collect();
            self.record.sample(SizeSample {
                at_us: now_us,
                workers: workers.len() as u32,
                cores: workers.iter().map(|(_, w)| w.cores).sum(),
                desired: summary.desired,
                reason: summary.reason.clone(),
            });
        }
        if self
            .last_view
            .is_some_and(|t| now.duration_since(t) < WATCHED_FOR)
        {
            self.frame(core, summary, now, hidden);
        }
    }

    fn frame(
        &mut self,
        core: &Core,
        summary: &Summary,
        now: Instant,
        hidden: &dyn Fn(WorkerId) -> bool,
    ) {
        self.views.advance(core, &self.record, summary, hidden);
        self.last_frame = Some(now);
    }

    /// A viewer at `since` asks for what it has not seen. The first viewer after a quiet
    /// spell gets a fresh frame at once.
    pub fn view(
        &mut self,
        core: &Core,
        summary: &Summary,
        since: Option<Cursor>,
        now: Instant,
        hidden: &dyn Fn(WorkerId) -> bool,
    ) -> Vec<(Cursor, Arc<str>)> {
        self.last_view = Some(now);
        if self
            .last_frame
            .is_none_or(|t| now.duration_since(t) > Duration::from_millis(1_500))
        {
            self.frame(core, summary, now, hidden);
        }
        self.views.update(since, core, &self.record, summary)
    }

    /// What ran since `since_unix_us`, as the client API returns it.
    pub fn task_stream(&self, core: &Core, since_unix_us: u64) -> v1::TaskStream {
        let names: Vec<&str> = core.prefix_stats().map(|(n, _)| n).collect();
        v1::TaskStream {
            tasks: self
                .record
                .tasks
                .iter()
                .filter(|t| t.stop_us >= since_unix_us)
                .map(|t| v1::TaskRecord {
                    key: t.key.to_string(),
                    prefix: names
                        .get(t.prefix.index())
                        .copied()
                        .unwrap_or("Other")
                        .to_owned(),
                    worker: self.record.name(t.worker).to_string(),
                    start_unix_us: t.start_us,
                    stop_unix_us: t.stop_us,
                    nbytes: t.nbytes,
                    ok: t.ok,
                })
                .collect(),
            transfers: self
                .record
                .transfers
                .iter()
                .filter(|t| t.stop_us >= since_unix_us)
                .map(|t| v1::TransferRecord {
                    from_worker: self.record.name(t.from).to_string(),
                    to_worker: self.record.name(t.to).to_string(),
                    start_unix_us: t.start_us,
                    stop_unix_us: t.stop_us,
                    bytes: t.bytes,
                    objects: t.objects,
                })
                .collect(),
            dropped: self.record.dropped_since(since_unix_us),
        }
    }
}
