//! The worker core driven step by step with a recording `Effects`: no processes, no
//! sockets; the store writes spills to a temporary directory.

use std::time::Duration;

use bytes::Bytes;
use shoal_proto::v1;
use shoal_proto::v1::scheduler_message::Msg;
use shoal_proto::v1::worker_message::Msg as Out;

use super::{Effects, Fetched, MAX_PENDING_TRANSFERS, WorkerCore};
use crate::executor::{ExecOutcome, ExecTask};
use crate::memory::{Sample, Thresholds, executors_of};
use crate::store::Store;

const MIB: u64 = 1 << 20;

/// Everything the core asked for, in order.
#[derive(Default)]
struct Recorder {
    /// (peer id, address, tasks, replicate).
    fetches: Vec<(u32, String, Vec<u64>, bool)>,
    started: Vec<(u64, bool)>,
    stopped: Vec<(u64, v1::TaskError)>,
    released: Vec<u64>,
    published: Vec<u64>,
    forgotten: Vec<String>,
}

impl Effects for Recorder {
    fn fetch(&mut self, peer: u32, address: &str, tasks: Vec<u64>, replicate: bool) {
        self.fetches
            .push((peer, address.to_owned(), tasks, replicate));
    }
    fn start(&mut self, task: ExecTask, python: bool) {
        self.started.push((task.task, python));
    }
    fn stop(&mut self, task: u64, error: v1::TaskError) {
        self.stopped.push((task, error));
    }
    fn released(&mut self, tasks: &[u64]) {
        self.released.extend_from_slice(tasks);
    }
    fn publish(&mut self, tasks: Vec<u64>) {
        self.published.extend(tasks);
    }
    fn forget_peer(&mut self, address: &str) {
        self.forgotten.push(address.to_owned());
    }
}

struct Bed {
    core: WorkerCore,
    store: Store,
    fx: Recorder,
    /// The session clock the core is given, in microseconds.
    now_us: u64,
    _dir: tempfile::TempDir,
}

impl Bed {
    fn new(cores: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Bed {
            core: WorkerCore::new("w1".into(), cores, Thresholds::default()),
            store: Store::new(dir.path().to_path_buf(), u64::MAX, None),
            fx: Recorder::default(),
            now_us: 1_000_000,
            _dir: dir,
        }
    }

    fn send(&mut self, msg: Msg) {
        self.core.on_message(msg, &mut self.store, &mut self.fx);
        self.core.sanity_check();
    }

    fn assign(&mut self, tasks: Vec<v1::TaskAssignment>) {
        self.send(Msg::Assign(v1::AssignTasks {
            tasks,
            blobs: vec![],
        }));
    }

    fn outcome(&mut self, task: u64, result: Result<Bytes, v1::TaskError>) {
        self.ended(ExecOutcome {
            task,
            result,
            in_store: false,
            live: None,
            lost_input: None,
            duration: Duration::from_millis(1),
        });
    }

    fn ended(&mut self, outcome: ExecOutcome) {
        self.core.on_outcome(outcome, &mut self.store);
        self.core.pump(&mut self.store, &mut self.fx);
        self.core.sanity_check();
    }

    fn memory(&mut self, used: u64, executors: &[(u32, Option<u64>, u64)]) {
        let sample = Sample {
            used,
            limit: 1000 * MIB,
            stored: self.store.memory_bytes(),
            executors: executors_of(executors),
        };
        self.core.on_memory(&sample, &mut self.store, &mut self.fx);
        self.core.sanity_check();
    }

    fn messages(&mut self) -> Vec<Out> {
        self.core.take_messages(self.now_us)
    }

    fn fetched(&mut self, fetched: Fetched) {
        self.core
            .on_fetched(fetched, self.now_us, &mut self.store, &mut self.fx);
        self.core.sanity_check();
    }

    fn add_peer(&mut self, id: u32) {
        self.send(Msg::Peers(v1::PeersChanged {
            added: vec![v1::Peer {
                worker_id: id,
                name: format!("w{id}"),
                data_address: format!("10.0.0.{id}:1"),
            }],
            removed: vec![],
        }));
    }
}

/// A completed fetch from `peer` of these objects, taking `duration_us`.
fn done(peer: u32, objects: &[(u64, &'static [u8])], replicate: bool, duration_us: u64) -> Fetched {
    Fetched::Done {
        peer,
        objects: objects
            .iter()
            .map(|&(id, data)| (id, Bytes::from_static(data)))
            .collect(),
        missing: vec![],
        replicate,
        duration_us,
    }
}

fn transfers_of(msgs: &[Out]) -> Vec<v1::Transfer> {
    msgs.iter()
        .filter_map(|m| match m {
            Out::Transfers(t) => Some(t.transfers.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn python(task: u64, inputs: &[(u64, Option<u32>)]) -> v1::TaskAssignment {
    v1::TaskAssignment {
        task,
        key: format!("t-{task}"),
        payload: Some(v1::TaskPayload {
            kind: Some(v1::task_payload::Kind::Python(v1::PythonTask {
                pickled: vec![1],
                shared: 0,
            })),
        }),
        inputs: inputs
            .iter()
            .map(|&(task, holder)| v1::DataLocation {
                task,
                workers: holder.into_iter().collect(),
            })
            .collect(),
        wanted: false,
        families: vec![],
    }
}

fn builtin(task: u64) -> v1::TaskAssignment {
    v1::TaskAssignment {
        task,
        key: format!("b-{task}"),
        payload: Some(v1::TaskPayload {
            kind: Some(v1::task_payload::Kind::Builtin(v1::BuiltinTask {
                op: Some(v1::builtin_task::Op::SleepMs(1)),
            })),
        }),
        inputs: vec![],
        wanted: false,
        families: vec![],
    }
}

fn state_of(msgs: &[Out]) -> Option<v1::WorkerState> {
    msgs.iter().find_map(|m| match m {
        Out::Heartbeat(h) => v1::WorkerState::try_from(h.state).ok(),
        _ => None,
    })
}

/// A task with local inputs starts at once; its result is stored and reported finished.
#[test]
fn runs_a_task_and_reports_it() {
    let mut bed = Bed::new(1);
    bed.store.put(1, Bytes::from_static(b"in")).expect("put");
    bed.assign(vec![python(2, &[(1, None)])]);
    assert_eq!(bed.fx.started, vec![(2, true)]);
    bed.outcome(2, Ok(Bytes::from_static(b"out")));
    assert!(bed.store.contains(2));
    let msgs = bed.messages();
    assert!(
        matches!(&msgs[..], [Out::Finished(f)] if f.tasks[0].task == 2 && f.tasks[0].size == 3)
    );
}

/// An input held by a peer is fetched once for every task needing it; the tasks start
/// when it arrives, and a peer that left makes them fail as InputLost, naming the holder.
#[test]
fn fetches_inputs_and_reports_lost_ones() {
    let mut bed = Bed::new(2);
    bed.add_peer(7);
    bed.assign(vec![python(2, &[(1, Some(7))]), python(3, &[(1, Some(7))])]);
    assert_eq!(
        bed.fx.fetches,
        vec![(7, "10.0.0.7:1".into(), vec![1], false)]
    );
    assert!(bed.fx.started.is_empty());
    bed.fetched(done(7, &[(1, b"x")], false, 10));
    assert_eq!(bed.fx.started, vec![(2, true), (3, true)]);

    bed.assign(vec![python(4, &[(9, Some(8))])]);
    let failed = bed.messages();
    let Some(Out::Failed(f)) = failed.iter().find(|m| matches!(m, Out::Failed(_))) else {
        panic!("expected a failure, got {failed:?}");
    };
    assert!(f.tasks[0].missing_input && f.tasks[0].missing_task == 9);
    assert_eq!(f.tasks[0].missing_from, Some(8));
    assert_eq!(
        f.tasks[0].error.as_ref().map(|e| e.kind.as_str()),
        Some("InputLost")
    );
}

/// A result its executor keeps live is reported finished at the size it will have in the
/// store and counted as stored; tasks reading it get it as a store reference; over the
/// spill threshold the worker has it written (then it can spill).
#[test]
fn live_results_are_stored_by_reference_and_written_for_spilling() {
    let mut bed = Bed::new(2);
    bed.assign(vec![python(1, &[])]);
    bed.ended(ExecOutcome {
        task: 1,
        result: Ok(Bytes::new()),
        in_store: false,
        live: Some(5 * MIB),
        lost_input: None,
        duration: Duration::from_millis(1),
    });
    assert!(bed.store.is_live(1));
    assert!(matches!(&bed.messages()[..], [Out::Finished(f)] if f.tasks[0].size == 5 * MIB));
    assert_eq!(bed.core.heartbeat(&bed.store).stored_bytes, 5 * MIB);
    bed.assign(vec![python(2, &[(1, None)])]);
    assert_eq!(bed.fx.started, vec![(1, true), (2, true)]);
    bed.memory(650 * MIB, &[]);
    assert!(bed.fx.published.is_empty(), "no pressure, nothing written");
    bed.memory(750 * MIB, &[]);
    assert_eq!(bed.fx.published, vec![1]);
}

/// A builtin task reading a live result (builtins need its bytes) has it written and
/// waits; it starts once the result is in the store.
#[test]
fn a_builtin_task_waits_for_its_live_input_to_be_written() {
    let mut bed = Bed::new(2);
    bed.store.put_live(1, 3);
    let mut task = builtin(2);
    task.inputs = vec![v1::DataLocation {
        task: 1,
        workers: vec![],
    }];
    bed.assign(vec![task]);
    assert!(bed.fx.started.is_empty());
    assert_eq!(bed.fx.published, vec![1]);
    bed.store.put(1, Bytes::from_static(b"one")).expect("put");
    bed.core.pump(&mut bed.store, &mut bed.fx);
    assert_eq!(bed.fx.started, vec![(2, false)]);
}

/// A live result whose executor died is reported lost (the scheduler recomputes it), and
/// a task whose live input was lost fails as a missing input of this worker, not as the
/// task's own error.
#[test]
fn lost_live_results_are_reported() {
    let mut bed = Bed::new(2);
    bed.store.put_live(1, MIB);
    bed.assign(vec![python(2, &[(1, None)])]);
    bed.store.lose(1);
    bed.ended(ExecOutcome {
        task: 2,
        result: Err(v1::TaskError::default()),
        in_store: false,
        live: None,
        lost_input: Some(1),
        duration: Duration::ZERO,
    });
    assert!(!bed.store.contains(1));
    let msgs = bed.messages();
    assert!(
        msgs.iter()
            .any(|m| matches!(m, Out::Lost(l) if l.tasks == vec![1])),
        "{msgs:?}"
    );
    let Some(Out::Failed(f)) = msgs.iter().find(|m| matches!(m, Out::Failed(_))) else {
        panic!("expected a failure, got {msgs:?}");
    };
    assert!(f.tasks[0].missing_input && f.tasks[0].missing_task == 1);
    assert_eq!(f.tasks[0].missing_from, None);
}

/// A release that follows the assignment recomputing a lost result is about the old copy:
/// the new run's result stays, and the executors are not told to drop it.
#[test]
fn a_release_after_a_reassignment_spares_the_new_run() {
    let mut bed = Bed::new(2);
    bed.assign(vec![python(1, &[])]);
    bed.send(Msg::Release(v1::ReleaseData { tasks: vec![1, 9] }));
    assert_eq!(bed.fx.released, vec![9]);
    bed.ended(ExecOutcome {
        task: 1,
        result: Ok(Bytes::new()),
        in_store: false,
        live: Some(MIB),
        lost_input: None,
        duration: Duration::from_millis(1),
    });
    assert!(bed.store.is_live(1));
}

/// Builtin tasks run at most one per core; the next starts when one ends.
#[test]
fn builtin_tasks_are_bounded_by_cores() {
    let mut bed = Bed::new(1);
    bed.assign(vec![builtin(1), builtin(2)]);
    assert_eq!(bed.fx.started, vec![(1, false)]);
    bed.outcome(1, Ok(Bytes::new()));
    assert_eq!(bed.fx.started, vec![(1, false), (2, false)]);
}

/// Over the spill threshold stored results go to disk until memory would be at the
/// target; they stay readable.
#[test]
fn spills_under_pressure() {
    let mut bed = Bed::new(1);
    for id in 1..=4 {
        bed.store
            .put(id, Bytes::from(vec![0u8; MIB as usize * 100]))
            .expect("put");
    }
    bed.memory(650 * MIB, &[]);
    assert_eq!(
        bed.store.spilled_bytes(),
        0,
        "under the spill threshold nothing moves"
    );
    bed.memory(750 * MIB, &[]);
    // 150 MiB over the 600 MiB target: two 100 MiB results go.
    assert_eq!(bed.store.spilled_bytes(), 200 * MIB);
    assert_eq!(bed.store.memory_bytes(), 200 * MIB);
    assert_eq!(bed.store.get(1).map(|b| b.len() as u64), Some(100 * MIB));
}

/// Over the pause threshold the worker says so at once and starts nothing new; back
/// under it (with the margin) it says so and starts what waited.
#[test]
fn pauses_and_resumes() {
    let mut bed = Bed::new(2);
    bed.memory(850 * MIB, &[]);
    assert_eq!(state_of(&bed.messages()), Some(v1::WorkerState::Paused));
    bed.assign(vec![python(1, &[]), builtin(2)]);
    assert!(bed.fx.started.is_empty(), "a paused worker starts nothing");
    bed.memory(780 * MIB, &[]);
    assert!(
        bed.messages().is_empty(),
        "within the margin it stays paused"
    );
    assert!(bed.fx.started.is_empty());
    bed.memory(500 * MIB, &[]);
    assert_eq!(state_of(&bed.messages()), Some(v1::WorkerState::Running));
    assert_eq!(bed.fx.started, vec![(1, true), (2, false)]);
    assert!(bed.core.heartbeat(&bed.store).state == v1::WorkerState::Running as i32);
}

/// Over the terminate threshold the executor of the running task holding the most
/// memory is stopped, once; the task fails with MemoryLimit and the figures; the worker
/// goes on with other tasks.
#[test]
fn stops_the_task_driving_memory() {
    let mut bed = Bed::new(2);
    bed.assign(vec![python(1, &[]), python(2, &[])]);
    let execs = [(100, Some(1), 80 * MIB), (101, Some(2), 800 * MIB)];
    bed.memory(960 * MIB, &execs);
    assert_eq!(bed.fx.stopped.len(), 1);
    let (task, error) = bed.fx.stopped[0].clone();
    assert_eq!(task, 2);
    assert_eq!(error.kind, "MemoryLimit");
    assert!(
        error.message.contains("\"t-2\"") && error.message.contains("960 MiB"),
        "{}",
        error.message
    );
    let figures = error.memory.as_deref().expect("figures");
    assert_eq!(
        (figures.used, figures.limit, figures.task_used),
        (960 * MIB, 1000 * MIB, 800 * MIB)
    );
    assert_eq!(figures.threshold, 0.95);
    bed.memory(970 * MIB, &execs);
    assert_eq!(
        bed.fx.stopped.len(),
        1,
        "no second stop while the first is pending"
    );
    bed.outcome(2, Err(error));
    let msgs = bed.messages();
    let failed = msgs.iter().find_map(|m| match m {
        Out::Failed(f) => Some(f),
        _ => None,
    });
    assert_eq!(failed.map(|f| f.tasks[0].task), Some(2));
    bed.outcome(1, Ok(Bytes::from_static(b"ok")));
    assert!(bed.store.contains(1));
    assert_eq!(bed.core.memory_stats().stopped_tasks, 1);
}

/// Released results leave the store and the executors are told; cancelled tasks that
/// had not started never start.
#[test]
fn release_and_cancel() {
    let mut bed = Bed::new(1);
    bed.store.put(5, Bytes::from_static(b"r")).expect("put");
    bed.send(Msg::Release(v1::ReleaseData { tasks: vec![5] }));
    assert!(!bed.store.contains(5));
    assert_eq!(bed.fx.released, vec![5]);
    bed.memory(850 * MIB, &[]);
    bed.assign(vec![builtin(1)]);
    bed.send(Msg::Cancel(v1::CancelTasks { tasks: vec![1] }));
    bed.memory(100 * MIB, &[]);
    assert!(bed.fx.started.is_empty());
}

/// A completed fetch is reported once, after the task messages, as one transfer naming the
/// peer, the bytes and objects it brought, how long it took and how long ago it ended.
#[test]
fn a_fetch_is_reported_as_a_transfer() {
    let mut bed = Bed::new(2);
    bed.add_peer(7);
    bed.store.put(5, Bytes::from_static(b"local")).expect("put");
    bed.assign(vec![
        builtin(4),
        python(2, &[(1, Some(7)), (3, Some(7)), (5, None)]),
    ]);
    assert_eq!(
        bed.fx.fetches,
        vec![(7, "10.0.0.7:1".into(), vec![1, 3], false)]
    );
    bed.outcome(4, Ok(Bytes::new()));
    bed.now_us = 5_000_000;
    bed.fetched(done(7, &[(1, b"abc"), (3, b"defgh")], false, 1_234));
    bed.now_us = 5_250_000;
    let msgs = bed.messages();
    assert!(
        matches!(&msgs[..], [Out::Finished(_), Out::Transfers(_)]),
        "transfers come after the task messages: {msgs:?}"
    );
    let expected = v1::Transfer {
        from: 7,
        bytes: 8,
        objects: 2,
        duration_us: 1_234,
        ended_ago_us: 250_000,
    };
    assert_eq!(transfers_of(&msgs), vec![expected]);
    assert!(
        transfers_of(&bed.messages()).is_empty(),
        "a transfer is reported once"
    );
}

/// Replications count as transfers too, one per fetch, each with its own peer; a failed
/// fetch is no transfer.
#[test]
fn replications_are_transfers_and_failures_are_not() {
    let mut bed = Bed::new(1);
    bed.add_peer(7);
    bed.add_peer(8);
    bed.send(Msg::Replicate(v1::Replicate {
        tasks: vec![v1::DataLocation {
            task: 1,
            workers: vec![8],
        }],
    }));
    assert_eq!(
        bed.fx.fetches,
        vec![(8, "10.0.0.8:1".into(), vec![1], true)]
    );
    bed.fetched(done(8, &[(1, b"r")], true, 7));
    bed.now_us += 3;
    bed.fetched(done(7, &[], false, 2));
    bed.fetched(Fetched::Failed {
        tasks: vec![9],
        peer: "10.0.0.7:1".into(),
        error: "refused".into(),
        replicate: false,
    });
    bed.now_us += 10;
    let msgs = bed.messages();
    assert!(
        msgs.iter()
            .any(|m| matches!(m, Out::DataAdded(d) if d.tasks == vec![1]))
    );
    let got: Vec<_> = transfers_of(&msgs)
        .iter()
        .map(|t| (t.from, t.bytes, t.objects, t.duration_us, t.ended_ago_us))
        .collect();
    assert_eq!(got, vec![(8, 1, 1, 7, 13), (7, 0, 0, 2, 10)]);
}

/// At most MAX_PENDING_TRANSFERS transfers wait for the scheduler: beyond that the oldest
/// go and are counted, and the rest are reported in order.
#[test]
fn pending_transfers_are_bounded() {
    let mut bed = Bed::new(1);
    let extra = 5;
    for i in 0..(MAX_PENDING_TRANSFERS + extra) as u64 {
        bed.now_us = i;
        bed.fetched(done(3, &[], false, i));
    }
    assert_eq!(bed.core.transfers_dropped(), extra as u64);
    let transfers = transfers_of(&bed.messages());
    assert_eq!(transfers.len(), MAX_PENDING_TRANSFERS);
    assert_eq!(transfers.first().map(|t| t.duration_us), Some(extra as u64));
    assert_eq!(
        transfers.first().map(|t| t.ended_ago_us),
        Some((MAX_PENDING_TRANSFERS - 1) as u64)
    );
    assert_eq!(transfers.last().map(|t| t.ended_ago_us), Some(0));
    bed.fetched(done(3, &[], false, 0));
    assert_eq!(transfers_of(&bed.messages()).len(), 1);
    assert_eq!(bed.core.transfers_dropped(), extra as u64);
}
