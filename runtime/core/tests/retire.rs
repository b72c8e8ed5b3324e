//! Retirement never throws work away: a copy that does not arrive is asked of another
//! survivor, a worker whose data could not move before the deadline goes back to work,
//! and the last holder of wanted data with no survivor is refused.

use shoal_core::{
    BuiltinOp, ClientId, Core, CoreConfig, NewTask, Payload, Resources, Sent, TestComm, WorkerId,
    WorkerState,
};

struct Bed {
    core: Core,
    comm: TestComm,
    client: ClientId,
}

impl Bed {
    fn new(workers: &[&str]) -> (Self, Vec<WorkerId>) {
        let mut core = Core::new(CoreConfig::default());
        let client = core.on_client_connected("test");
        let ids = workers
            .iter()
            .map(|n| {
                core.on_worker_added(n, 1, 1 << 30, "127.0.0.1:0", "", Resources::default())
                    .expect("unique")
            })
            .collect();
        (
            Bed {
                core,
                comm: TestComm::default(),
                client,
            },
            ids,
        )
    }

    /// Submits one wanted task and finishes it wherever it was placed; returns that worker.
    fn result_on_some_worker(&mut self, key: &str) -> WorkerId {
        let task = NewTask {
            key: key.into(),
            deps: Box::new([]),
            existing_deps: None,
            payload: Payload::Builtin(BuiltinOp::Noop),
            priority: 0,
            wanted: true,
            max_retries: None,
            resources: None,
        };
        self.core
            .on_graph(self.client, vec![task], &mut self.comm)
            .expect("accepted");
        self.core.schedule(&mut self.comm);
        let assigned = self.comm.take_assigned();
        let (worker, r, _) = assigned[0].clone();
        self.core
            .on_task_finished(worker, r, 100, 1_000, &mut self.comm);
        self.core.sanity_check().expect("invariants");
        self.comm.take();
        worker
    }

    fn replicate_targets(&mut self) -> Vec<WorkerId> {
        self.comm
            .take()
            .into_iter()
            .filter_map(|s| match s {
                Sent::Replicate(target, _) => Some(target),
                _ => None,
            })
            .collect()
    }
}

/// A worker whose results could not move before the deadline is refused and takes tasks
/// again; nothing it holds is dropped.
#[test]
fn deadline_returns_worker_to_work() {
    let (mut bed, _) = Bed::new(&["a", "b"]);
    let holder = bed.result_on_some_worker("x-1");
    bed.core
        .on_retire(holder, &mut bed.comm)
        .expect("connected");
    assert_eq!(bed.replicate_targets().len(), 1);
    bed.core.on_retire_deadline(holder, 60.0, &mut bed.comm);
    let sent = bed.comm.take();
    let refused = sent.iter().find_map(|s| match s {
        Sent::RetireDone(_, Err(why)) => Some(why.clone()),
        _ => None,
    });
    let why = refused.expect("refused");
    assert!(
        why.contains("could not move 1 results before the 60 s deadline; it keeps running"),
        "{why}"
    );
    assert_eq!(bed.core.worker(holder).state, WorkerState::Active);
    assert_eq!(bed.core.worker(holder).stored_tasks, 1);
    bed.core.sanity_check().expect("invariants");
}

/// A copy that never arrived is asked again, of another survivor.
#[test]
fn stalled_copy_goes_to_another_survivor() {
    let (mut bed, _) = Bed::new(&["a", "b", "c"]);
    let holder = bed.result_on_some_worker("x-1");
    bed.core
        .on_retire(holder, &mut bed.comm)
        .expect("connected");
    let first = bed.replicate_targets();
    assert_eq!(first.len(), 1);
    bed.core.on_retire_stalled(holder, &mut bed.comm);
    let second = bed.replicate_targets();
    assert_eq!(second.len(), 1);
    assert_ne!(
        first[0], second[0],
        "the retry should try the other survivor"
    );
    bed.core.sanity_check().expect("invariants");
    // The retried copy lands: the retirement completes.
    let r = bed.core.task_ref(bed.core.find_key("x-1").expect("known"));
    bed.core.on_data_added(second[0], &[r], &mut bed.comm);
    let sent = bed.comm.take();
    assert!(
        sent.iter()
            .any(|s| matches!(s, Sent::RetireDone(_, Ok(())))),
        "{sent:?}"
    );
    bed.core.sanity_check().expect("invariants");
}

/// The last worker holding results a client wants, with no survivor, is refused and keeps
/// its data.
#[test]
fn last_holder_of_wanted_data_is_refused() {
    let (mut bed, ids) = Bed::new(&["only"]);
    bed.result_on_some_worker("x-1");
    bed.core
        .on_retire(ids[0], &mut bed.comm)
        .expect("connected");
    let sent = bed.comm.take();
    let why = sent
        .iter()
        .find_map(|s| match s {
            Sent::RetireDone(_, Err(why)) => Some(why.clone()),
            _ => None,
        })
        .expect("refused");
    assert!(why.contains("1 wanted by a client"), "{why}");
    assert!(!sent.iter().any(|s| matches!(s, Sent::Shutdown(_))));
    assert_eq!(bed.core.worker(ids[0]).state, WorkerState::Active);
    bed.core.sanity_check().expect("invariants");
}
