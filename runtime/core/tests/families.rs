//! Families of root tasks: a task without dependencies is assigned with its dependents
//! that read a few tasks each (so a worker can make those few in one process), never with
//! a dependent reading one task or many (all-to-all); a task with dependencies, or a builtin
//! one, gets none.

use shoal_core::{
    BuiltinOp, Core, CoreConfig, MAX_FAMILY, NewTask, Payload, PythonPayload, Sent, TestComm,
};
use std::collections::HashMap;

fn task(key: &str, deps: &[u32], priority: i32) -> NewTask {
    NewTask {
        key: key.into(),
        deps: deps.into(),
        existing_deps: None,
        payload: Payload::Python(Box::new(PythonPayload {
            pickled: Box::new([1]),
            shared: 0,
        })),
        priority,
        wanted: false,
        max_retries: None,
        resources: None,
    }
}

/// Roots carry exactly their small-fan-in dependents; other tasks carry none.
#[test]
fn roots_are_assigned_with_their_small_families() {
    let mut core = Core::new(CoreConfig::default());
    let client = core.on_client_connected("test");
    let mut comm = TestComm::default();
    // Roots 0..=MAX_FAMILY; `part-a` reads 0..4, `part-b` reads 4..8, `one` reads 0 alone,
    // `wide` reads every root (one more than a family may have).
    let roots = MAX_FAMILY as u32 + 1;
    let mut tasks: Vec<NewTask> = (0..roots)
        .map(|i| task(&format!("root-{i}"), &[], 0))
        .collect();
    tasks.push(task("part-a", &[0, 1, 2, 3], 1));
    tasks.push(task("part-b", &[4, 5, 6, 7], 1));
    tasks.push(task("one", &[0], 1));
    let all: Vec<u32> = (0..roots).collect();
    let mut wide = task("wide", &all, 2);
    wide.wanted = true;
    tasks.push(wide);
    let mut end = task("end", &[roots, roots + 1, roots + 2], 3);
    end.wanted = true;
    tasks.push(end);
    core.on_graph(client, tasks, &mut comm).expect("accepted");
    core.on_worker_added("w", 64, 1 << 30, "127.0.0.1:0", "", Default::default())
        .expect("unique");
    core.schedule(&mut comm);
    core.sanity_check().expect("invariants");

    let key_of = |r| core.resolve(r).map(|t| t.key.to_string()).expect("live");
    let families: HashMap<String, Vec<String>> = comm
        .take()
        .into_iter()
        .filter_map(|s| match s {
            Sent::Assign { key, families, .. } => {
                Some((key, families.into_iter().map(key_of).collect()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        families.len(),
        roots as usize,
        "only the roots are ready: {families:?}"
    );
    assert_eq!(families["root-0"], ["part-a"]);
    assert_eq!(families["root-3"], ["part-a"]);
    assert_eq!(families["root-5"], ["part-b"]);
    assert!(
        families[&format!("root-{MAX_FAMILY}")].is_empty(),
        "{families:?}"
    );
    let part = core.find_key("part-a").expect("submitted");
    assert!(
        core.families_of(part).is_empty(),
        "a task with dependencies has no family"
    );
}

/// Builtin tasks run in the worker itself (no processes to choose among): no families.
#[test]
fn builtin_roots_have_no_families() {
    let mut core = Core::new(CoreConfig::default());
    let client = core.on_client_connected("test");
    let mut comm = TestComm::default();
    let mut tasks: Vec<NewTask> = (0..2).map(|i| task(&format!("root-{i}"), &[], 0)).collect();
    for root in &mut tasks {
        root.payload = Payload::Builtin(BuiltinOp::Noop);
    }
    tasks.push(task("pair", &[0, 1], 1));
    core.on_graph(client, tasks, &mut comm).expect("accepted");
    let root = core.find_key("root-0").expect("submitted");
    assert!(core.families_of(root).is_empty());
}
