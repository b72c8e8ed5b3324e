//! Worker losses follow their tasks: a cause reported after the connection dropped is
//! attached to the tasks that ran there, a task that keeps killing workers fails naming
//! the OOM kills and the limit, other tasks of the graph are not failed, and a paused
//! worker is given no tasks.

use shoal_core::{
    BuiltinOp, ClientId, Core, CoreConfig, Loss, LossCause, NewTask, Payload, Resources, Sent,
    TestComm, WorkerId,
};

const MIB: u64 = 1 << 20;

struct Bed {
    core: Core,
    comm: TestComm,
    client: ClientId,
    next_worker: usize,
}

impl Bed {
    fn new() -> Self {
        let mut core = Core::new(CoreConfig::default());
        let client = core.on_client_connected("test");
        Bed {
            core,
            comm: TestComm::default(),
            client,
            next_worker: 0,
        }
    }

    fn worker(&mut self) -> (WorkerId, String) {
        self.next_worker += 1;
        let name = format!("pod-{}", self.next_worker);
        let id = self
            .core
            .on_worker_added(&name, 1, 256 * MIB, "127.0.0.1:0", "", Resources::default())
            .expect("unique");
        (id, name)
    }

    fn submit(&mut self, keys: &[&str]) {
        let tasks = keys
            .iter()
            .map(|k| NewTask {
                key: (*k).into(),
                deps: Box::new([]),
                existing_deps: None,
                payload: Payload::Builtin(BuiltinOp::Noop),
                priority: 0,
                wanted: true,
                max_retries: Some(1),
                resources: None,
            })
            .collect();
        self.core
            .on_graph(self.client, tasks, &mut self.comm)
            .expect("accepted");
    }

    /// Schedules; returns the keys assigned to each worker.
    fn schedule(&mut self) -> Vec<(WorkerId, String)> {
        self.core.schedule(&mut self.comm);
        self.core.sanity_check().expect("invariants");
        self.comm
            .take_assigned()
            .into_iter()
            .map(|(w, _, k)| (w, k))
            .collect()
    }

    fn failures(&mut self) -> Vec<(String, shoal_core::TaskError)> {
        self.comm
            .take()
            .into_iter()
            .filter_map(|s| match s {
                Sent::Failed(_, key, error) => Some((key, (*error).clone())),
                _ => None,
            })
            .collect()
    }
}

fn oom() -> Loss {
    Loss {
        cause: LossCause::OomKilled,
        memory_limit: 256 * MIB,
        detail: "container OOMKilled, exit code 137".into(),
    }
}

/// A task that OOM-kills every worker it runs on fails, after its retries, as
/// WorkerOOMKilled naming the pods and the limit, also when each cause was reported only
/// after the connection had dropped; the graph's other task still finishes.
#[test]
fn oom_cause_reported_late_follows_the_task() {
    let mut bed = Bed::new();
    let (a, a_name) = bed.worker();
    bed.submit(&["hog"]);
    assert_eq!(bed.schedule(), vec![(a, "hog".to_string())]);
    bed.core
        .on_worker_lost(a, &Loss::default(), &mut bed.comm)
        .expect("known");
    let answer = bed.core.on_loss_reported(&a_name, &oom());
    assert!(answer.known);
    assert_eq!(answer.running, vec!["hog".to_string()]);

    let (b, b_name) = bed.worker();
    bed.submit(&["fine"]);
    let placed = bed.schedule();
    assert!(placed.contains(&(b, "hog".to_string())), "{placed:?}");
    bed.core
        .on_worker_lost(b, &Loss::default(), &mut bed.comm)
        .expect("known");
    let failed = bed.failures();
    let (key, error) = failed
        .iter()
        .find(|(k, _)| k == "hog")
        .cloned()
        .expect("hog failed");
    assert_eq!(key, "hog");
    assert_eq!(error.kind, "WorkerOOMKilled");
    assert!(error.message.contains(&a_name), "{}", error.message);
    assert!(error.message.contains("limit 256 MiB"), "{}", error.message);
    assert!(
        error.message.contains("1 lost otherwise"),
        "{}",
        error.message
    );
    assert_eq!(error.losses.len(), 2);
    assert!(
        !failed.iter().any(|(k, _)| k == "fine"),
        "one poisonous task fails alone"
    );
    bed.core.on_loss_reported(&b_name, &oom());

    let (c, _) = bed.worker();
    let placed = bed.schedule();
    assert_eq!(placed, vec![(c, "fine".to_string())]);
}

/// A loss reported while the worker is still connected names what it runs now; an
/// unknown worker is answered as unknown.
#[test]
fn report_for_connected_and_unknown_workers() {
    let mut bed = Bed::new();
    let (_, name) = bed.worker();
    bed.submit(&["x"]);
    bed.schedule();
    let answer = bed.core.on_loss_reported(&name, &oom());
    assert!(answer.known && answer.running == vec!["x".to_string()]);
    let unknown = bed.core.on_loss_reported("nobody", &oom());
    assert!(!unknown.known && unknown.running.is_empty());
}

/// A paused worker gets no tasks; once it resumes it does.
#[test]
fn paused_worker_gets_no_tasks() {
    let mut bed = Bed::new();
    let (a, _) = bed.worker();
    assert!(bed.core.on_worker_paused(a, true));
    assert!(!bed.core.on_worker_paused(a, true), "no change");
    bed.submit(&["x", "y"]);
    assert!(bed.schedule().is_empty());
    let (b, _) = bed.worker();
    assert!(bed.schedule().iter().all(|(w, _)| *w == b));
    bed.core.on_worker_paused(a, false);
    bed.submit(&["z1", "z2", "z3", "z4", "z5", "z6", "z7", "z8"]);
    assert!(bed.schedule().iter().any(|(w, _)| *w == a));
}
