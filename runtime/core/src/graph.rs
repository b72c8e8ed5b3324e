//! Graph submissions: the staged form the edge builds from wire chunks, and the checks that
//! refuse a malformed graph whole (naming the offending keys) before anything is changed.
//! Insertion into the core is in `reactor.rs`; this module does not touch the core's state.

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

use crate::resources::Resources;
use crate::task::Payload;

/// One task of a submission, as the edge staged it from the wire.
#[derive(Clone, Debug)]
pub struct NewTask {
    pub key: Box<str>,
    /// Dependencies inside the submission, by ordinal (position in the submission).
    pub deps: Box<[u32]>,
    /// Dependencies on keys the scheduler already holds (rare: boxed to keep this small).
    pub existing_deps: Option<Box<Vec<Box<str>>>>,
    pub payload: Payload,
    /// Lower runs first.
    pub priority: i32,
    pub wanted: bool,
    /// `None` means the scheduler default; `Some(0)`: never re-run after a worker loss.
    pub max_retries: Option<u8>,
    /// What a worker must offer to run it (`None`: any worker).
    pub resources: Option<Box<Resources>>,
}

crate::static_assert_size!(NewTask, 80);

impl NewTask {
    /// Keys of the dependencies the scheduler already holds.
    pub fn existing(&self) -> &[Box<str>] {
        self.existing_deps.as_deref().map_or(&[], Vec::as_slice)
    }
}

/// How many keys an error names before it says "and N more".
const NAMED_KEYS: usize = 5;

/// Keys for an error message: a few names, then a count of the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyList {
    pub keys: Vec<String>,
    pub total: usize,
}

impl KeyList {
    pub fn collect<'a>(mut keys: impl Iterator<Item = &'a str>) -> Self {
        let named: Vec<String> = keys.by_ref().take(NAMED_KEYS).map(str::to_string).collect();
        let total = named.len() + keys.count();
        KeyList { keys: named, total }
    }
}

impl std::fmt::Display for KeyList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quoted: Vec<String> = self.keys.iter().map(|k| format!("{k:?}")).collect();
        write!(f, "{}", quoted.join(", "))?;
        if self.total > self.keys.len() {
            write!(f, " and {} more", self.total - self.keys.len())?;
        }
        Ok(())
    }
}

/// Why a submission was refused. Nothing of a refused submission is kept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    #[error("the graph is empty: submit at least one task")]
    Empty,
    #[error("duplicate keys in one submission: {keys}; every task of a graph needs its own key")]
    DuplicateKeys { keys: KeyList },
    #[error(
        "task {key:?} depends on ordinal {ordinal}, but the submission has only {len} tasks; \
         dependencies are 0-based positions in the submission"
    )]
    OrdinalOutOfRange {
        key: String,
        ordinal: u32,
        len: usize,
    },
    #[error(
        "unknown dependencies: task {key:?} depends on {missing}, which the scheduler does not \
         hold (never submitted, or already released); submit them in the same graph"
    )]
    UnknownDependency { key: String, missing: KeyList },
    #[error("the graph has a cycle: {path}; a task graph must be acyclic")]
    Cycle { path: String },
    #[error("task {key:?} depends on itself")]
    SelfDependency { key: String },
    #[error("tasks without a payload: {keys}; every task needs something to run")]
    EmptyPayload { keys: KeyList },
    #[error(
        "task {key:?} uses shared blob {id:#x}, which was not sent; send each blob in or \
         before the chunk of the first task that uses it"
    )]
    UnknownBlob { key: String, id: u64 },
    #[error(
        "task {key:?} asks for resources {asked}, which no worker group offers (groups: \
         {offered}); add a ShoalWorkerGroup whose workers offer them (its `taskResources`, \
         or `shoal worker --resources {asked}`), or drop the annotation"
    )]
    UnsatisfiableResources {
        key: String,
        asked: String,
        offered: String,
    },
    #[error("graph chunk of {size} bytes is over the limit of {limit} bytes; send smaller chunks")]
    ChunkTooLarge { size: usize, limit: usize },
}

/// Refuses a submission whose keys repeat, whose ordinals point outside it, or that has a
/// cycle. Existing keys and existing dependencies are checked by the core (it holds them).
pub fn check_submission(tasks: &[NewTask]) -> Result<(), GraphError> {
    if tasks.is_empty() {
        return Err(GraphError::Empty);
    }
    check_unique_keys(tasks)?;
    let len = tasks.len();
    let mut forward = false;
    for (i, task) in tasks.iter().enumerate() {
        for &d in task.deps.iter() {
            if d as usize >= len {
                return Err(GraphError::OrdinalOutOfRange {
                    key: task.key.to_string(),
                    ordinal: d,
                    len,
                });
            }
            if d as usize == i {
                return Err(GraphError::SelfDependency {
                    key: task.key.to_string(),
                });
            }
            forward |= d as usize > i;
        }
    }
    // A submission in dependency order cannot have a cycle: only look when some edge points
    // forward.
    if forward {
        check_acyclic(tasks)?;
    }
    Ok(())
}

fn check_unique_keys(tasks: &[NewTask]) -> Result<(), GraphError> {
    let hasher = DefaultHashBuilder::default();
    let mut seen: HashTable<u32> = HashTable::with_capacity(tasks.len());
    let mut duplicates: Vec<&str> = Vec::new();
    for (i, task) in tasks.iter().enumerate() {
        let hash = hasher.hash_one(&*task.key);
        let found = seen
            .find(hash, |&j| tasks[j as usize].key == task.key)
            .is_some();
        if found {
            duplicates.push(&task.key);
        } else {
            seen.insert_unique(hash, i as u32, |&j| {
                hasher.hash_one(&*tasks[j as usize].key)
            });
        }
    }
    if duplicates.is_empty() {
        Ok(())
    } else {
        Err(GraphError::DuplicateKeys {
            keys: KeyList::collect(duplicates.into_iter()),
        })
    }
}

/// Kahn's algorithm; on failure walks the leftover tasks to name one cycle.
fn check_acyclic(tasks: &[NewTask]) -> Result<(), GraphError> {
    let len = tasks.len();
    let mut missing: Vec<u32> = tasks.iter().map(|t| t.deps.len() as u32).collect();
    // Dependents in compressed rows.
    let mut starts = vec![0u32; len + 1];
    for task in tasks {
        for &d in task.deps.iter() {
            starts[d as usize + 1] += 1;
        }
    }
    for i in 0..len {
        starts[i + 1] += starts[i];
    }
    let mut fill = starts.clone();
    let mut dependents = vec![0u32; starts[len] as usize];
    for (i, task) in tasks.iter().enumerate() {
        for &d in task.deps.iter() {
            dependents[fill[d as usize] as usize] = i as u32;
            fill[d as usize] += 1;
        }
    }
    let mut stack: Vec<u32> = (0..len as u32)
        .filter(|&i| missing[i as usize] == 0)
        .collect();
    let mut done = 0usize;
    while let Some(i) = stack.pop() {
        done += 1;
        for &j in &dependents[starts[i as usize] as usize..starts[i as usize + 1] as usize] {
            missing[j as usize] -= 1;
            if missing[j as usize] == 0 {
                stack.push(j);
            }
        }
    }
    if done == len {
        return Ok(());
    }
    // Every leftover task has a leftover dependency: follow them until one repeats.
    let Some(start) = (0..len).find(|&i| missing[i] > 0) else {
        return Ok(());
    };
    let mut position = vec![u32::MAX; len];
    let mut path: Vec<usize> = Vec::new();
    let mut at = start;
    while position[at] == u32::MAX {
        position[at] = path.len() as u32;
        path.push(at);
        let next = tasks[at]
            .deps
            .iter()
            .map(|&d| d as usize)
            .find(|&d| missing[d] > 0);
        match next {
            Some(n) => at = n,
            None => break,
        }
    }
    let cycle_start = if position[at] == u32::MAX {
        0
    } else {
        position[at] as usize
    };
    let mut names: Vec<String> = path[cycle_start..]
        .iter()
        .map(|&i| format!("{:?}", &*tasks[i].key))
        .collect();
    names.push(format!("{:?}", &*tasks[at].key));
    Err(GraphError::Cycle {
        path: names.join(" -> "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::BuiltinOp;

    fn task(key: &str, deps: &[u32]) -> NewTask {
        NewTask {
            key: key.into(),
            deps: deps.into(),
            existing_deps: None,
            payload: Payload::Builtin(BuiltinOp::Noop),
            priority: 0,
            wanted: false,
            max_retries: None,
            resources: None,
        }
    }

    /// A well-formed graph, in any order, passes.
    #[test]
    fn accepts_dag_in_any_order() {
        let tasks = vec![task("c", &[1, 2]), task("a", &[]), task("b", &[1])];
        assert_eq!(check_submission(&tasks), Ok(()));
    }

    /// A cycle is refused with the keys on it.
    #[test]
    fn names_the_cycle() {
        let tasks = vec![
            task("a", &[2]),
            task("b", &[0]),
            task("c", &[1]),
            task("d", &[]),
        ];
        let err = check_submission(&tasks).expect_err("cycle");
        let GraphError::Cycle { path } = &err else {
            unreachable!("{err}")
        };
        for key in ["\"a\"", "\"b\"", "\"c\""] {
            assert!(path.contains(key), "{path}");
        }
        assert!(!path.contains("\"d\""), "{path}");
    }

    /// Duplicate keys are named.
    #[test]
    fn names_duplicates() {
        let tasks = vec![task("x", &[]), task("y", &[]), task("x", &[])];
        let err = check_submission(&tasks).expect_err("dup");
        assert!(err.to_string().contains("\"x\""), "{err}");
    }

    /// Ordinals outside the submission and self-dependencies are refused.
    #[test]
    fn refuses_bad_ordinals() {
        assert!(matches!(
            check_submission(&[task("a", &[3])]),
            Err(GraphError::OrdinalOutOfRange { ordinal: 3, .. })
        ));
        assert!(matches!(
            check_submission(&[task("a", &[0])]),
            Err(GraphError::SelfDependency { .. })
        ));
        assert_eq!(check_submission(&[]), Err(GraphError::Empty));
    }

    /// A key list names a few keys and counts the rest.
    #[test]
    fn key_list_counts_the_rest() {
        let keys = ["a", "b", "c", "d", "e", "f", "g"];
        let list = KeyList::collect(keys.iter().copied());
        assert_eq!(
            list.to_string(),
            "\"a\", \"b\", \"c\", \"d\", \"e\" and 2 more"
        );
    }
}
