//! Drives the core with a simulated cluster (workers holding values, running `Sum` tasks,
//! fetching inputs from where the core says they are) and checks every invariant after
//! each step and the final results against a direct evaluation of the graph.
#![allow(
    clippy::panic,
    reason = "a test harness reports violations by panicking"
)]

use std::collections::{HashMap, VecDeque};

use proptest::prelude::*;
use shoal_core::{
    BuiltinOp, ClientId, Core, CoreConfig, NewTask, Payload, Report, Sent, TaskError, TaskRef,
    TestComm, WorkerId,
};

/// A graph of `Sum` tasks: (add, deps by ordinal, wanted).
type Spec = Vec<(i64, Vec<u32>, bool)>;

fn new_tasks(spec: &Spec, prefix: &str) -> Vec<NewTask> {
    spec.iter()
        .enumerate()
        .map(|(i, (add, deps, wanted))| NewTask {
            key: format!("{prefix}{i}").into(),
            deps: deps.clone().into(),
            existing_deps: None,
            payload: Payload::Builtin(BuiltinOp::Sum(*add)),
            priority: 0,
            wanted: *wanted,
            max_retries: Some(50),
            resources: None,
        })
        .collect()
}

fn expected(spec: &Spec) -> Vec<i64> {
    let mut values: Vec<Option<i64>> = vec![None; spec.len()];
    fn eval(i: usize, spec: &Spec, values: &mut Vec<Option<i64>>) -> i64 {
        if let Some(v) = values[i] {
            return v;
        }
        let v = spec[i].0
            + spec[i]
                .1
                .iter()
                .map(|&d| eval(d as usize, spec, values))
                .sum::<i64>();
        values[i] = Some(v);
        v
    }
    (0..spec.len())
        .map(|i| eval(i, spec, &mut values))
        .collect()
}

/// An assigned task on a simulated worker: (task, key, add, inputs with their holders).
type Queued = (TaskRef, String, i64, Vec<(TaskRef, WorkerId)>);

#[derive(Default)]
struct SimWorker {
    store: HashMap<u64, i64>,
    queue: VecDeque<Queued>,
}

struct Sim {
    core: Core,
    comm: TestComm,
    workers: HashMap<WorkerId, SimWorker>,
    failed: HashMap<String, TaskError>,
    next_worker: u32,
    client: ClientId,
}

impl Sim {
    fn new(workers: u32) -> Self {
        let mut core = Core::new(CoreConfig::default());
        let client = core.on_client_connected("test");
        let mut sim = Sim {
            core,
            comm: TestComm::default(),
            workers: HashMap::new(),
            failed: HashMap::new(),
            next_worker: 0,
            client,
        };
        for _ in 0..workers {
            sim.add_worker();
        }
        sim
    }

    fn add_worker(&mut self) {
        let name = format!("w{}", self.next_worker);
        self.next_worker += 1;
        let id = self
            .core
            .on_worker_added(&name, 2, 1 << 30, "127.0.0.1:0", "", Default::default())
            .expect("unique name");
        self.workers.insert(id, SimWorker::default());
        self.step();
    }

    /// Schedules, delivers the core's messages, checks invariants.
    fn step(&mut self) {
        self.core.schedule(&mut self.comm);
        for sent in self.comm.take() {
            match sent {
                Sent::Assign {
                    worker,
                    task,
                    key,
                    inputs,
                    ..
                } => {
                    let add = match self.core.resolve(task).map(|t| &t.payload) {
                        Some(Payload::Builtin(BuiltinOp::Sum(a))) => *a,
                        other => panic!("unexpected payload {other:?}"),
                    };
                    let inputs = inputs.iter().map(|i| (i.task, i.worker)).collect();
                    self.workers
                        .get_mut(&worker)
                        .expect("assigned to a live worker")
                        .queue
                        .push_back((task, key, add, inputs));
                }
                Sent::ReleaseData(w, t) => {
                    if let Some(w) = self.workers.get_mut(&w) {
                        w.store.remove(&t.to_wire());
                    }
                }
                Sent::Cancel(w, t) => {
                    if let Some(w) = self.workers.get_mut(&w) {
                        w.queue.retain(|q| q.0 != t);
                    }
                }
                Sent::Finished(_, key) => {
                    self.failed.remove(&key);
                }
                Sent::Failed(_, key, error) => {
                    self.failed.insert(key, (*error).clone());
                }
                Sent::Replicate(..) | Sent::Shutdown(_) | Sent::RetireDone(..) => {}
            }
        }
        if let Err(e) = self.core.sanity_check() {
            panic!("sanity check failed: {e}");
        }
    }

    /// Runs the first queued task of the n-th busy worker. False when nothing is queued.
    fn run_one(&mut self, pick: usize) -> bool {
        let mut busy: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| !w.queue.is_empty())
            .map(|(id, _)| *id)
            .collect();
        if busy.is_empty() {
            return false;
        }
        busy.sort();
        let wid = busy[pick % busy.len()];
        let (task, _key, add, inputs) = self
            .workers
            .get_mut(&wid)
            .and_then(|w| w.queue.pop_front())
            .expect("busy worker has a task");
        let mut sum = add;
        for (input, holder) in inputs {
            match self
                .workers
                .get(&holder)
                .and_then(|h| h.store.get(&input.to_wire()))
            {
                Some(v) => sum += v,
                None => {
                    self.core
                        .on_input_missing(wid, task, input, holder, &mut self.comm);
                    self.step();
                    return true;
                }
            }
        }
        self.workers
            .get_mut(&wid)
            .expect("live")
            .store
            .insert(task.to_wire(), sum);
        self.core.on_task_finished(wid, task, 8, 10, &mut self.comm);
        self.step();
        true
    }

    fn kill(&mut self, pick: usize) {
        let mut ids: Vec<WorkerId> = self.workers.keys().copied().collect();
        ids.sort();
        let wid = ids[pick % ids.len()];
        self.workers.remove(&wid);
        self.core
            .on_worker_lost(
                wid,
                &shoal_core::Loss {
                    detail: "killed by the test".into(),
                    ..Default::default()
                },
                &mut self.comm,
            )
            .expect("known worker");
        self.step();
    }

    fn run_to_end(&mut self) {
        // Graphs here have under 40 tasks: this many runs means a livelock, not progress.
        let mut guard = 0;
        while self.run_one(guard) {
            guard += 1;
            assert!(guard < 20_000, "no progress after {guard} task runs");
        }
    }

    fn value(&self, key: &str) -> Option<i64> {
        let id = self.core.find_key(key)?;
        let holder = self.core.holders(id).first().copied()?;
        self.workers
            .get(&holder)?
            .store
            .get(&self.core.task_ref(id).to_wire())
            .copied()
    }
}

fn check_results(sim: &Sim, spec: &Spec) {
    let want = expected(spec);
    for (i, (_, _, wanted)) in spec.iter().enumerate() {
        if *wanted {
            let key = format!("t{i}");
            assert_eq!(sim.value(&key), Some(want[i]), "value of {key}");
        }
    }
    assert_eq!(sim.core.counts().unfinished(), 0);
}

fn arb_spec() -> impl Strategy<Value = Spec> {
    (1usize..40).prop_flat_map(|n| {
        proptest::collection::vec(
            (
                -5i64..5,
                proptest::collection::vec(any::<u32>(), 0..4),
                any::<bool>(),
            ),
            n,
        )
        .prop_map(|raw| {
            raw.into_iter()
                .enumerate()
                .map(|(i, (add, deps, wanted))| {
                    let mut deps: Vec<u32> = if i == 0 {
                        vec![]
                    } else {
                        deps.into_iter().map(|d| d % i as u32).collect()
                    };
                    deps.sort_unstable();
                    deps.dedup();
                    (add, deps, wanted)
                })
                .collect()
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any DAG, any interleaving of task runs and up to three worker kills: every wanted
    /// result is computed correctly, invariants hold after every step, nothing leaks.
    #[test]
    fn random_graphs_survive_worker_loss(spec in arb_spec(), events in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut sim = Sim::new(3);
        let summary = sim.core.on_graph(sim.client, new_tasks(&spec, "t"), &mut sim.comm).expect("valid graph");
        prop_assert_eq!(summary.new_tasks as usize, spec.len());
        sim.step();
        let mut kills = 0;
        for e in events {
            if e % 17 == 0 && kills < 3 {
                kills += 1;
                sim.kill(e as usize);
                sim.add_worker();
            } else {
                sim.run_one(e as usize);
            }
        }
        sim.run_to_end();
        prop_assert!(sim.failed.is_empty(), "{:?}", sim.failed);
        check_results(&sim, &spec);
        // Releasing every key forgets every task and frees every result.
        let keys: Vec<String> = (0..spec.len()).map(|i| format!("t{i}")).collect();
        sim.core.on_release(sim.client, &keys, &mut sim.comm);
        sim.step();
        prop_assert_eq!(sim.core.task_count(), 0);
        for w in sim.workers.values() {
            prop_assert!(w.store.is_empty());
        }
    }
}

/// A missing-input report about a copy the input no longer has there (the location was
/// stale: the input moved since the assignment) loses nothing: the real copy stays and
/// only the reporting task runs again. (Found as a livelock by the property test.)
#[test]
fn stale_missing_input_report_keeps_the_real_copy() {
    let spec: Spec = vec![(1, vec![], false), (2, vec![0], true)];
    let mut sim = Sim::new(2);
    sim.core
        .on_graph(sim.client, new_tasks(&spec, "t"), &mut sim.comm)
        .expect("valid");
    sim.step();
    let t0 = sim.core.find_key("t0").expect("t0");
    while sim.core.holders(t0).is_empty() {
        assert!(sim.run_one(0), "t0 never ran");
    }
    let holder = sim.core.holders(t0)[0];
    let (worker, t1) = sim
        .workers
        .iter()
        .find_map(|(w, sw)| sw.queue.iter().find(|q| q.1 == "t1").map(|q| (*w, q.0)))
        .expect("t1 is assigned once t0 is in memory");
    let elsewhere = *sim
        .workers
        .keys()
        .find(|&&w| w != holder)
        .expect("two workers");
    sim.core
        .on_input_missing(worker, t1, sim.core.task_ref(t0), elsewhere, &mut sim.comm);
    sim.step();
    assert_eq!(
        sim.core.holders(t0).as_slice(),
        [holder],
        "the real copy is kept"
    );
    sim.run_to_end();
    check_results(&sim, &spec);
}

/// A result a worker lost without being asked (its executor died holding it live) is
/// computed again from its inputs, and the graph still gives the right values.
#[test]
fn data_lost_by_a_worker_is_recomputed() {
    let spec: Spec = vec![(1, vec![], false), (2, vec![0], false), (3, vec![1], true)];
    let mut sim = Sim::new(2);
    sim.core
        .on_graph(sim.client, new_tasks(&spec, "t"), &mut sim.comm)
        .expect("valid");
    sim.step();
    let t1 = sim.core.find_key("t1").expect("t1");
    while sim.core.holders(t1).is_empty() {
        assert!(sim.run_one(0) || sim.run_one(1), "t1 never ran");
    }
    let holder = sim.core.holders(t1)[0];
    let r1 = sim.core.task_ref(t1);
    if let Some(w) = sim.workers.get_mut(&holder) {
        w.store.remove(&r1.to_wire());
    }
    sim.core.on_data_lost(holder, &[r1], &mut sim.comm);
    assert!(
        sim.core.holders(t1).is_empty(),
        "the lost copy is no longer counted"
    );
    sim.step();
    sim.run_to_end();
    check_results(&sim, &spec);
}

/// A binary tree reduction computes the right root, and intermediate results are freed as
/// soon as their parent has run.
#[test]
fn tree_reduction_frees_intermediates() {
    let leaves = 64u32;
    let mut spec: Spec = (0..leaves).map(|i| (i64::from(i), vec![], false)).collect();
    let mut level: Vec<u32> = (0..leaves).collect();
    while level.len() > 1 {
        let mut next = Vec::new();
        for pair in level.chunks(2) {
            spec.push((0, pair.to_vec(), false));
            next.push(spec.len() as u32 - 1);
        }
        level = next;
    }
    let root = spec.len() - 1;
    spec[root].2 = true;
    let mut sim = Sim::new(2);
    sim.core
        .on_graph(sim.client, new_tasks(&spec, "t"), &mut sim.comm)
        .expect("valid");
    sim.step();
    sim.run_to_end();
    check_results(&sim, &spec);
    let stored: usize = sim.workers.values().map(|w| w.store.len()).sum();
    assert_eq!(stored, 1, "only the root result is kept");
}

/// A task that fails dooms its dependents with the same cause, naming the failed task.
#[test]
fn failure_propagates_to_dependents() {
    let spec: Spec = vec![(1, vec![], false), (2, vec![0], false), (3, vec![1], true)];
    let mut sim = Sim::new(1);
    sim.core
        .on_graph(sim.client, new_tasks(&spec, "t"), &mut sim.comm)
        .expect("valid");
    sim.step();
    let assigned: Vec<_> = sim
        .workers
        .values_mut()
        .flat_map(|w| w.queue.drain(..))
        .collect();
    assert_eq!(assigned.len(), 1);
    let (task, key, ..) = assigned[0].clone();
    assert_eq!(key, "t0");
    let error = TaskError {
        kind: "ValueError".into(),
        message: "bad input".into(),
        detail: String::new(),
        worker: "w0".into(),
        origin_key: None,
        ..Default::default()
    };
    sim.core
        .on_task_failed(WorkerId(0), task, error, &mut sim.comm);
    sim.step();
    let failed = sim.failed.get("t2").expect("t2 failed");
    assert_eq!(failed.kind, "ValueError");
    assert_eq!(failed.origin_key.as_deref(), Some("t0"));
    assert_eq!(sim.core.counts().unfinished(), 0);
}

/// A task whose worker keeps dying fails after its retry limit, with every loss named.
#[test]
fn retries_are_bounded_and_causes_kept() {
    let mut sim = Sim::new(1);
    let mut tasks = new_tasks(&vec![(1, vec![], true)], "t");
    tasks[0].max_retries = Some(2);
    sim.core
        .on_graph(sim.client, tasks, &mut sim.comm)
        .expect("valid");
    sim.step();
    for _ in 0..3 {
        sim.add_worker();
        sim.kill(0);
    }
    let error = sim.failed.get("t0").expect("failed after retries");
    assert_eq!(error.kind, "WorkerLost");
    assert!(error.message.contains("3 times"), "{}", error.message);
    assert_eq!(error.detail.lines().count(), 3, "{}", error.detail);
}

/// Refused graphs change nothing; the core keeps serving.
#[test]
fn refused_graph_changes_nothing() {
    let mut sim = Sim::new(1);
    let mut tasks = new_tasks(&vec![(1, vec![], true), (1, vec![], true)], "t");
    tasks[1].existing_deps = Some(Box::new(vec!["nope".into()]));
    let err = sim
        .core
        .on_graph(sim.client, tasks, &mut sim.comm)
        .expect_err("unknown dep");
    assert!(err.to_string().contains("\"nope\""), "{err}");
    assert_eq!(sim.core.task_count(), 0);
    sim.step();
    sim.core
        .on_graph(
            sim.client,
            new_tasks(&vec![(5, vec![], true)], "t"),
            &mut sim.comm,
        )
        .expect("valid");
    sim.step();
    sim.run_to_end();
    assert_eq!(sim.value("t0"), Some(5));
}

/// Retiring a worker moves its unique results to another worker before shutting it down:
/// nothing is recomputed.
#[test]
fn retirement_moves_data_first() {
    let mut sim = Sim::new(2);
    let spec: Spec = (0..10).map(|i| (i, vec![], true)).collect();
    sim.core
        .on_graph(sim.client, new_tasks(&spec, "t"), &mut sim.comm)
        .expect("valid");
    sim.step();
    sim.run_to_end();
    let victim = WorkerId(0);
    let finished_before = sim.core.finished_total();
    sim.core
        .on_retire(victim, &mut sim.comm)
        .expect("known worker");
    let sent = sim.comm.take();
    let mut replicate = None;
    for s in &sent {
        if let Sent::Replicate(target, inputs) = s {
            replicate = Some((*target, inputs.clone()));
        }
    }
    let (target, inputs) = replicate.expect("asked to replicate");
    assert_eq!(target, WorkerId(1));
    let mut copied = Vec::new();
    for input in inputs {
        let v = sim.workers[&input.worker].store[&input.task.to_wire()];
        sim.workers
            .get_mut(&target)
            .expect("live")
            .store
            .insert(input.task.to_wire(), v);
        copied.push(input.task);
    }
    sim.core.on_data_added(target, &copied, &mut sim.comm);
    let sent = sim.comm.take();
    assert!(
        sent.contains(&Sent::RetireDone("w0".into(), Ok(()))),
        "{sent:?}"
    );
    assert!(sent.contains(&Sent::Shutdown(victim)));
    sim.workers.remove(&victim);
    sim.core.sanity_check().expect("sane");
    assert_eq!(sim.core.finished_total(), finished_before);
    check_results(&sim, &spec);
}

/// A client disconnecting releases what it wanted.
#[test]
fn disconnect_releases() {
    let mut sim = Sim::new(1);
    sim.core
        .on_graph(
            sim.client,
            new_tasks(&vec![(1, vec![], true)], "t"),
            &mut sim.comm,
        )
        .expect("valid");
    sim.step();
    sim.run_to_end();
    sim.core.on_client_disconnected(sim.client, &mut sim.comm);
    sim.step();
    assert_eq!(sim.core.task_count(), 0);
    assert!(sim.workers.values().all(|w| w.store.is_empty()));
}

/// Reports about a task a worker no longer owns change nothing: a repeated completion is
/// ignored, and a completion for a forgotten task makes the worker drop the data.
#[test]
fn stale_reports_are_ignored() {
    let mut sim = Sim::new(1);
    sim.core
        .on_graph(
            sim.client,
            new_tasks(&vec![(1, vec![], true)], "t"),
            &mut sim.comm,
        )
        .expect("valid");
    sim.step();
    let (task, ..) = sim
        .workers
        .values_mut()
        .flat_map(|w| w.queue.drain(..))
        .next()
        .expect("assigned");
    let w = WorkerId(0);
    assert_eq!(
        sim.core.on_task_finished(w, task, 8, 1, &mut sim.comm),
        Report::Applied
    );
    assert_eq!(
        sim.core.on_task_finished(w, task, 8, 1, &mut sim.comm),
        Report::Stale
    );
    assert!(
        sim.comm
            .take()
            .iter()
            .all(|s| !matches!(s, Sent::ReleaseData(..)))
    );
    sim.core
        .on_release(sim.client, &["t0".to_string()], &mut sim.comm);
    sim.comm.take();
    assert_eq!(
        sim.core.on_task_finished(w, task, 8, 1, &mut sim.comm),
        Report::Stale
    );
    assert_eq!(sim.comm.take(), vec![Sent::ReleaseData(w, task)]);
    sim.core.sanity_check().expect("sane");
}
