//! The autoscaling estimate and resource placement, driven through the core's public
//! events: queued work weighted per task prefix, memory pressure, results clients still
//! want, resource groups, and refusal of requests no group can satisfy.

use shoal_core::{
    BuiltinOp, ClientId, Core, CoreConfig, GraphError, GroupSpec, NewTask, Payload, Resources,
    TestComm, WorkerId,
};

fn task(key: &str, resources: Option<Resources>, wanted: bool) -> NewTask {
    NewTask {
        key: key.into(),
        deps: Box::new([]),
        existing_deps: None,
        payload: Payload::Builtin(BuiltinOp::Noop),
        priority: 0,
        wanted,
        max_retries: None,
        resources: resources.map(Box::new),
    }
}

fn highmem() -> Resources {
    Resources::new([("highmem", 1.0)])
}

fn group(name: &str, cores: u32, resources: Resources) -> GroupSpec {
    GroupSpec {
        name: name.into(),
        cores,
        memory_limit: 1 << 30,
        resources,
    }
}

struct Bed {
    core: Core,
    comm: TestComm,
    client: ClientId,
}

impl Bed {
    fn new() -> Self {
        let mut core = Core::new(CoreConfig {
            initial_task_duration_us: 1_000_000.0,
            ..CoreConfig::default()
        });
        let client = core.on_client_connected("test");
        Bed {
            core,
            comm: TestComm::default(),
            client,
        }
    }

    fn worker(&mut self, name: &str, cores: u32, group: &str, resources: Resources) -> WorkerId {
        self.core
            .on_worker_added(name, cores, 1 << 30, "127.0.0.1:0", group, resources)
            .expect("unique worker name")
    }

    fn submit(&mut self, tasks: Vec<NewTask>) -> Result<(), GraphError> {
        let result = self.core.on_graph(self.client, tasks, &mut self.comm);
        self.step();
        result.map(|_| ())
    }

    fn step(&mut self) {
        self.core.schedule(&mut self.comm);
        self.core.sanity_check().expect("core invariants hold");
    }

    /// Finishes every assigned task with this duration and size.
    fn finish_all(&mut self, duration_us: u64, size: u64) {
        for (worker, task, _) in self.comm.take_assigned() {
            self.core
                .on_task_finished(worker, task, size, duration_us, &mut self.comm);
            self.core.sanity_check().expect("core invariants hold");
        }
        self.step();
    }
}

/// Queued work asks for enough cores to finish within the target, rounded up to workers.
#[test]
fn queued_work() {
    let mut bed = Bed::new();
    bed.worker("w0", 4, "", Resources::default());
    let tasks = (0..100)
        .map(|i| task(&format!("inc-{i}"), None, false))
        .collect();
    bed.submit(tasks).expect("accepted");
    // 100 tasks x 1 s / 5 s = 20 cores; 4 per worker -> 5 workers.
    let groups = bed.core.groups_of_workers();
    let est = bed.core.adaptive_target(&groups, 5.0);
    assert_eq!(est.len(), 1);
    assert_eq!(est[0].name, "default");
    assert_eq!(est[0].desired_workers, 5, "{}", est[0].reason);
    assert!(
        est[0].reason.contains("100 ready+running tasks"),
        "{}",
        est[0].reason
    );
    assert!(est[0].reason.contains("(inc"), "{}", est[0].reason);
    assert!(est[0].reason.contains("-> 5 workers"), "{}", est[0].reason);
}

/// Each prefix's work is weighted by its own measured duration, and the reason names the
/// prefix that dominates.
#[test]
fn durations_per_function() {
    let mut bed = Bed::new();
    bed.worker("w0", 1, "", Resources::default());
    bed.submit(vec![task("slow_inc-0", None, false)])
        .expect("accepted");
    bed.finish_all(2_000_000, 8);
    bed.submit(vec![task("('fast-ab12', 0)", None, false)])
        .expect("accepted");
    bed.finish_all(10_000, 8);
    assert_eq!(bed.core.prefix_duration_us("slow_inc"), Some(2_000_000.0));
    assert_eq!(bed.core.prefix_duration_us("fast"), Some(10_000.0));
    let mut tasks: Vec<NewTask> = (1..=10)
        .map(|i| task(&format!("slow_inc-{i}"), None, false))
        .collect();
    tasks.extend((1..=1000).map(|i| task(&format!("('fast-ab12', {i})"), None, false)));
    bed.submit(tasks).expect("accepted");
    // 10 x 2 s + 1000 x 10 ms = 30 s of work / 5 s = 6 cores (1 per worker).
    let est = bed.core.adaptive_target(&bed.core.groups_of_workers(), 5.0);
    assert_eq!(est[0].desired_workers, 6, "{}", est[0].reason);
    assert!(est[0].reason.contains("(slow_inc"), "{}", est[0].reason);
}

/// A group holding more than 60% of its memory wants workers until it is back under it.
#[test]
fn memory_pressure() {
    let mut bed = Bed::new();
    bed.worker("w0", 1, "", Resources::default());
    let tasks = (0..9)
        .map(|i| task(&format!("load-{i}"), None, true))
        .collect();
    bed.submit(tasks).expect("accepted");
    for _ in 0..9 {
        bed.finish_all(1_000, 100 << 20);
    }
    assert_eq!(bed.core.counts().unfinished(), 0);
    // 900 MiB held of 1 GiB: 900 / (0.6 x 1024) -> 2 workers.
    let est = bed.core.adaptive_target(&bed.core.groups_of_workers(), 5.0);
    assert_eq!(est[0].desired_workers, 2, "{}", est[0].reason);
    assert!(est[0].reason.contains("60%"), "{}", est[0].reason);
}

/// A group whose workers hold results a client wants never asks for zero workers.
#[test]
fn wanted_results_keep_one_worker() {
    let mut bed = Bed::new();
    bed.worker("w0", 1, "", Resources::default());
    bed.submit(vec![task("x-1", None, true)]).expect("accepted");
    bed.finish_all(1_000, 10);
    let est = bed.core.adaptive_target(&bed.core.groups_of_workers(), 5.0);
    assert_eq!(est[0].desired_workers, 1, "{}", est[0].reason);
    assert!(
        est[0].reason.contains("client still wants"),
        "{}",
        est[0].reason
    );
}

/// A graph submitted with no worker connected is queued, not refused, and the estimate
/// asks for at least one worker.
#[test]
fn no_workers_yet() {
    let mut bed = Bed::new();
    let mut tasks = vec![task("inc-1", None, true)];
    tasks.push(task("big-1", Some(highmem()), true));
    bed.submit(tasks).expect("queued with no workers");
    assert_eq!(bed.core.counts().ready, 2);
    assert!(bed.comm.take_assigned().is_empty());
    let est = bed.core.adaptive_target(&bed.core.groups_of_workers(), 5.0);
    assert_eq!(est.len(), 1);
    assert!(est[0].desired_workers >= 1, "{}", est[0].reason);
}

/// Tasks asking for a resource count only toward the first group offering it, and run
/// only on its workers; unannotated tasks never count toward that group.
#[test]
fn demand_per_resource_group() {
    let mut bed = Bed::new();
    let plain = bed.worker("plain-0", 1, "default", Resources::default());
    let big = bed.worker("big-0", 1, "highmem", highmem());
    let groups = vec![
        group("default", 1, Resources::default()),
        group("highmem", 1, highmem()),
    ];
    bed.core.set_known_groups(groups.clone());
    let mut tasks: Vec<NewTask> = (0..10)
        .map(|i| task(&format!("big-{i}"), Some(highmem()), false))
        .collect();
    tasks.extend((0..5).map(|i| task(&format!("small-{i}"), None, false)));
    bed.submit(tasks).expect("accepted");
    let est = bed.core.adaptive_target(&groups, 1.0);
    assert!(
        est[0].reason.starts_with("5 ready+running"),
        "{}",
        est[0].reason
    );
    assert_eq!(est[0].desired_workers, 5);
    assert!(
        est[1].reason.starts_with("10 ready+running"),
        "{}",
        est[1].reason
    );
    assert_eq!(est[1].desired_workers, 10);
    for _ in 0..20 {
        for (worker, task, key) in bed.comm.take_assigned() {
            if key.starts_with("big") {
                assert_eq!(worker, big, "{key} ran on a worker without highmem");
            } else {
                assert_eq!(worker, plain, "{key} should run on the default group");
            }
            bed.core
                .on_task_finished(worker, task, 1, 1_000, &mut bed.comm);
        }
        bed.step();
    }
    assert_eq!(bed.core.counts().unfinished(), 0);
}

/// A task asking for resources no known group offers is refused whole, naming the key,
/// what it asked, what exists, and the fix.
#[test]
fn unsatisfiable_request_is_refused() {
    let mut bed = Bed::new();
    bed.worker("w0", 1, "", Resources::default());
    let gpu = Resources::new([("gpu", 1.0)]);
    let err = bed
        .submit(vec![
            task("ok-1", None, true),
            task("train-1", Some(gpu.clone()), true),
        ])
        .expect_err("no worker offers a gpu");
    let text = err.to_string();
    for part in [
        "\"train-1\"",
        "gpu=1",
        "worker \"w0\"",
        "offers none",
        "ShoalWorkerGroup",
    ] {
        assert!(text.contains(part), "{part} missing from: {text}");
    }
    assert_eq!(
        bed.core.task_count(),
        0,
        "a refused graph leaves nothing behind"
    );
    // Once the operator names its groups, those decide.
    bed.core.set_known_groups(vec![
        group("default", 1, Resources::default()),
        group("gpu", 1, gpu.clone()),
    ]);
    bed.submit(vec![task("train-1", Some(gpu), true)])
        .expect("a known group offers a gpu");
}

/// The retire order puts idle workers first, then those holding the least unique data.
#[test]
fn retire_order_idle_then_least_data() {
    let mut bed = Bed::new();
    let a = bed.worker("a", 1, "", Resources::default());
    bed.worker("b", 1, "", Resources::default());
    bed.worker("c", 1, "", Resources::default());
    bed.submit(vec![task("x-1", None, true), task("x-2", None, true)])
        .expect("accepted");
    for (worker, task, _) in bed.comm.take_assigned() {
        let size = if worker == a { 1000 } else { 10 };
        bed.core
            .on_task_finished(worker, task, size, 1_000, &mut bed.comm);
    }
    bed.step();
    bed.submit(vec![task("y-1", None, false)])
        .expect("accepted");
    let assigned: Vec<_> = bed.comm.take_assigned();
    assert_eq!(assigned.len(), 1);
    let busy = assigned[0].0;
    let est = bed.core.adaptive_target(&bed.core.groups_of_workers(), 5.0);
    let order = &est[0].retire_order;
    assert_eq!(order.len(), 3);
    let name = |w: WorkerId| bed.core.worker(w).name.clone();
    assert_eq!(order.last(), Some(&name(busy)), "{order:?}");
    let idle: Vec<&String> = order[..2].iter().collect();
    // Among idle workers, less unique data goes first.
    let bytes = |n: &str| {
        if n == "a" {
            1000
        } else if n == "b" {
            10
        } else {
            0
        }
    };
    assert!(bytes(idle[0]) <= bytes(idle[1]), "{order:?}");
}
