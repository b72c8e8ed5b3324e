//! What ran, kept for the dashboard and performance reports: the last tasks (Dask's task
//! stream keeps 100,000 too), peer transfers, recent errors, the cluster's size over time
//! and each worker's CPU and running tasks from its heartbeats. Bounded rings with
//! sequence numbers, so a viewer asks for what is new since its cursor. Pure: time comes
//! in as Unix microseconds. Not here: the JSON the page gets (`view.rs`) or HTTP.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use shoal_core::{PrefixId, WorkerId};

/// Tasks kept for the task stream and reports.
pub const MAX_TASKS: usize = 100_000;
pub const MAX_TRANSFERS: usize = 20_000;
pub const MAX_ERRORS: usize = 100;
/// Size samples kept (one a second: an hour).
pub const MAX_SAMPLES: usize = 3_600;
const SAMPLE_EVERY_US: u64 = 1_000_000;

#[derive(Clone, Debug, PartialEq)]
pub struct TaskRun {
    pub key: Box<str>,
    pub prefix: PrefixId,
    pub worker: WorkerId,
    pub start_us: u64,
    pub stop_us: u64,
    pub nbytes: u64,
    pub ok: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TransferRun {
    pub from: WorkerId,
    pub to: WorkerId,
    pub start_us: u64,
    pub stop_us: u64,
    pub bytes: u64,
    pub objects: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ErrorSeen {
    pub at_us: u64,
    pub key: Box<str>,
    pub prefix: PrefixId,
    pub worker: WorkerId,
    pub kind: String,
    pub message: String,
    pub traceback: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SizeSample {
    pub at_us: u64,
    pub workers: u32,
    pub cores: u32,
    /// The autoscaling estimate and its reason.
    pub desired: u32,
    pub reason: String,
}

/// A worker's figures that only its heartbeats carry.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Liveness {
    pub cpu: f64,
    pub running: u32,
    /// Bytes the worker wrote into its shared-memory store so far.
    pub shared_written: u64,
}

/// A bounded ring whose entries have consecutive sequence numbers.
#[derive(Debug)]
pub struct Ring<T> {
    items: VecDeque<T>,
    /// Sequence number of `items[0]`.
    first: u64,
    cap: usize,
}

impl<T> Ring<T> {
    pub fn new(cap: usize) -> Self {
        Ring {
            items: VecDeque::new(),
            first: 0,
            cap,
        }
    }

    /// Appends, returning the oldest entry when it had to go.
    pub fn push(&mut self, item: T) -> Option<T> {
        let dropped = if self.items.len() == self.cap {
            self.first += 1;
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(item);
        dropped
    }

    /// The sequence number the next entry gets (a cursor that has seen everything).
    pub fn end(&self) -> u64 {
        self.first + self.items.len() as u64
    }

    /// Entries with sequence number `since` or later that are still kept, and how many
    /// between `since` and the oldest kept were dropped.
    pub fn since(&self, since: u64) -> (impl Iterator<Item = &T>, u64) {
        let skip = since.saturating_sub(self.first) as usize;
        let dropped = self.first.saturating_sub(since);
        (self.items.iter().skip(skip), dropped)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.items.iter()
    }
}

#[derive(Debug)]
pub struct Recorder {
    pub tasks: Ring<TaskRun>,
    pub transfers: Ring<TransferRun>,
    pub errors: Ring<ErrorSeen>,
    pub samples: Ring<SizeSample>,
    /// Names of every worker seen (records outlive their workers).
    names: HashMap<WorkerId, Arc<str>>,
    live: HashMap<WorkerId, Liveness>,
    /// Tasks dropped from `tasks`, by the second they ended (bounded: older seconds merge
    /// into the first entry).
    dropped_by_second: std::collections::BTreeMap<u64, u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            tasks: Ring::new(MAX_TASKS),
            transfers: Ring::new(MAX_TRANSFERS),
            errors: Ring::new(MAX_ERRORS),
            samples: Ring::new(MAX_SAMPLES),
            names: HashMap::new(),
            live: HashMap::new(),
            dropped_by_second: Default::default(),
        }
    }
}

impl Recorder {
    pub fn worker_joined(&mut self, worker: WorkerId, name: &str) {
        self.names.insert(worker, name.into());
    }

    pub fn worker_left(&mut self, worker: WorkerId) {
        self.live.remove(&worker);
    }

    pub fn name(&self, worker: WorkerId) -> Arc<str> {
        self.names
            .get(&worker)
            .cloned()
            .unwrap_or_else(|| Arc::from(format!("worker-{}", worker.0)))
    }

    pub fn heartbeat(&mut self, worker: WorkerId, cpu: f64, running: u32, shared_written: u64) {
        self.live.insert(
            worker,
            Liveness {
                cpu,
                running,
                shared_written,
            },
        );
    }

    pub fn liveness(&self, worker: WorkerId) -> Liveness {
        self.live.get(&worker).copied().unwrap_or_default()
    }

    /// Keeps a task that ended (the oldest kept goes when full; drops are counted by the
    /// second they ended, for `dropped_since`).
    pub fn task(&mut self, run: TaskRun) {
        if let Some(old) = self.tasks.push(run) {
            *self
                .dropped_by_second
                .entry(old.stop_us / 1_000_000)
                .or_default() += 1;
            if self.dropped_by_second.len() > MAX_SAMPLES
                && let Some((_, n)) = self.dropped_by_second.pop_first()
                && let Some(mut first) = self.dropped_by_second.first_entry()
            {
                *first.get_mut() += n;
            }
        }
    }

    /// Tasks that ended at or after `since_us` but are no longer kept.
    pub fn dropped_since(&self, since_us: u64) -> u64 {
        self.dropped_by_second
            .range(since_us / 1_000_000..)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn error(&mut self, error: ErrorSeen) {
        let _ = self.errors.push(error);
    }

    /// A fetch `to` made from `from`, reported `ended_ago_us` before `now_us`.
    pub fn transfer(
        &mut self,
        now_us: u64,
        to: WorkerId,
        from: WorkerId,
        t: &shoal_proto::v1::Transfer,
    ) {
        let stop_us = now_us.saturating_sub(t.ended_ago_us);
        let _ = self.transfers.push(TransferRun {
            from,
            to,
            start_us: stop_us.saturating_sub(t.duration_us),
            stop_us,
            bytes: t.bytes,
            objects: t.objects,
        });
    }

    /// Whether a size sample is due at `now_us` (one a second).
    pub fn sample_due(&self, now_us: u64) -> bool {
        self.samples
            .iter()
            .next_back()
            .is_none_or(|last| now_us >= last.at_us + SAMPLE_EVERY_US)
    }

    pub fn sample(&mut self, sample: SizeSample) {
        let _ = self.samples.push(sample);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tasks pushed out of the ring are counted by when they ended.
    #[test]
    fn dropped_tasks_are_counted_by_time() {
        let mut r = Recorder::default();
        for i in 0..(MAX_TASKS as u64 + 3) {
            r.task(TaskRun {
                key: "k".into(),
                prefix: PrefixId(0),
                worker: WorkerId(0),
                start_us: i,
                stop_us: i * 10,
                nbytes: 0,
                ok: true,
            });
        }
        assert_eq!(r.dropped_since(0), 3);
        assert_eq!(r.dropped_since(2_000_000), 0);
    }

    /// A full ring drops its oldest entries, and a cursor before them learns how many.
    #[test]
    fn ring_keeps_the_newest_and_counts_what_a_cursor_missed() {
        let mut ring = Ring::new(3);
        for i in 0..5 {
            let _ = ring.push(i);
        }
        assert_eq!(ring.end(), 5);
        let (items, dropped) = ring.since(0);
        assert_eq!(items.copied().collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(dropped, 2);
        let (items, dropped) = ring.since(4);
        assert_eq!(items.copied().collect::<Vec<_>>(), [4]);
        assert_eq!(dropped, 0);
        let (items, _) = ring.since(5);
        assert_eq!(items.count(), 0);
    }

    /// Size samples are taken at most once a second of the clock passed in.
    #[test]
    fn samples_once_a_second() {
        let mut r = Recorder::default();
        let at = |at_us| SizeSample {
            at_us,
            workers: 1,
            cores: 1,
            desired: 1,
            reason: String::new(),
        };
        assert!(r.sample_due(5));
        r.sample(at(5));
        assert!(!r.sample_due(999_999));
        assert!(r.sample_due(1_000_005));
    }

    /// A transfer's times come from when the message arrived minus how long ago it ended.
    #[test]
    fn transfer_times_are_on_the_scheduler_clock() {
        let mut r = Recorder::default();
        let t = shoal_proto::v1::Transfer {
            from: 1,
            bytes: 10,
            objects: 2,
            duration_us: 300,
            ended_ago_us: 1_000,
        };
        r.transfer(10_000, WorkerId(2), WorkerId(1), &t);
        let got = r.transfers.iter().next().expect("recorded");
        assert_eq!((got.start_us, got.stop_us), (8_700, 9_000));
        assert_eq!(
            (got.from, got.to, got.bytes),
            (WorkerId(1), WorkerId(2), 10)
        );
    }
}
