//! Builtin-task graphs for benchmarks and tests, with the results they must produce.
//! Every task is a `sum` (its value plus its inputs), so results are checkable integers.

use shoal_proto::v1;

/// A graph ready to submit and the wanted results it must produce.
pub struct BenchGraph {
    pub tasks: Vec<v1::TaskSpec>,
    pub expected: Vec<(String, i64)>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphKind {
    /// N independent tasks; every result is gathered.
    Map,
    /// A binary-tree reduction of about N/2 leaves (N tasks in all).
    Tree,
    /// An all-to-all exchange: p inputs, p*p splits, p outputs (about N tasks).
    Shuffle,
}

fn sum(key: String, add: i64, deps: Vec<u32>, wanted: bool) -> v1::TaskSpec {
    v1::TaskSpec {
        key,
        deps,
        existing_deps: vec![],
        payload: Some(v1::TaskPayload {
            kind: Some(v1::task_payload::Kind::Builtin(v1::BuiltinTask {
                op: Some(v1::builtin_task::Op::Sum(add)),
            })),
        }),
        priority: 0,
        wanted,
        max_retries: None,
        resources: Default::default(),
    }
}

pub fn build(kind: GraphKind, tasks: u64, prefix: &str) -> BenchGraph {
    match kind {
        GraphKind::Map => map(tasks, prefix),
        GraphKind::Tree => tree(tasks, prefix),
        GraphKind::Shuffle => shuffle(tasks, prefix),
    }
}

fn map(n: u64, prefix: &str) -> BenchGraph {
    let tasks: Vec<v1::TaskSpec> = (0..n)
        .map(|i| sum(format!("{prefix}{i}"), i as i64, vec![], true))
        .collect();
    let expected = (0..n).map(|i| (format!("{prefix}{i}"), i as i64)).collect();
    BenchGraph { tasks, expected }
}

/// Submitted in depth-first post order, so submission order is a good run order (memory
/// stays low: a subtree finishes before the next starts).
fn tree(n: u64, prefix: &str) -> BenchGraph {
    let leaves = n.div_ceil(2).max(1);
    let mut tasks = Vec::with_capacity((2 * leaves) as usize);
    fn node(lo: u64, hi: u64, prefix: &str, tasks: &mut Vec<v1::TaskSpec>) -> u32 {
        if hi - lo == 1 {
            tasks.push(sum(
                format!("{prefix}{}", tasks.len()),
                lo as i64,
                vec![],
                false,
            ));
        } else {
            let mid = lo + (hi - lo) / 2;
            let left = node(lo, mid, prefix, tasks);
            let right = node(mid, hi, prefix, tasks);
            tasks.push(sum(
                format!("{prefix}{}", tasks.len()),
                0,
                vec![left, right],
                false,
            ));
        }
        (tasks.len() - 1) as u32
    }
    let root = node(0, leaves, prefix, &mut tasks) as usize;
    tasks[root].wanted = true;
    let total = (leaves as i128 * (leaves as i128 - 1) / 2) as i64;
    BenchGraph {
        expected: vec![(tasks[root].key.clone(), total)],
        tasks,
    }
}

fn shuffle(n: u64, prefix: &str) -> BenchGraph {
    let mut p = (n as f64).sqrt() as u64;
    while p > 1 && p * p + 2 * p > n {
        p -= 1;
    }
    let p = p.max(1);
    let mut tasks = Vec::with_capacity((p * p + 2 * p) as usize);
    for i in 0..p {
        tasks.push(sum(format!("{prefix}in{i}"), i as i64, vec![], false));
    }
    for i in 0..p {
        for j in 0..p {
            tasks.push(sum(
                format!("{prefix}split{i}-{j}"),
                j as i64,
                vec![i as u32],
                false,
            ));
        }
    }
    let mut expected = Vec::new();
    for j in 0..p {
        let deps = (0..p).map(|i| (p + i * p + j) as u32).collect();
        let key = format!("{prefix}out{j}");
        tasks.push(sum(key.clone(), 0, deps, true));
        let (p, j) = (p as i64, j as i64);
        expected.push((key, p * (p - 1) / 2 + p * j));
    }
    BenchGraph { tasks, expected }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tree graphs reference only earlier tasks and have the asked size.
    #[test]
    fn tree_is_in_dependency_order() {
        let g = tree(15, "t");
        assert_eq!(g.tasks.len(), 15);
        for (i, t) in g.tasks.iter().enumerate() {
            assert!(t.deps.iter().all(|&d| (d as usize) < i));
        }
        assert_eq!(g.expected, vec![("t14".to_string(), 28)]);
    }

    /// Shuffle outputs depend on one split of every input.
    #[test]
    fn shuffle_shape() {
        let g = shuffle(100, "s");
        let p = g.expected.len();
        assert_eq!(g.tasks.len(), p * p + 2 * p);
        assert!(g.tasks.last().is_some_and(|t| t.deps.len() == p));
    }
}
