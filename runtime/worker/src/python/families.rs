//! Families of root tasks in the pool: which process each family's tasks went to, and
//! where the next one goes. A family is the tasks without inputs that one dependent reads
//! (`ExecTask::families`, from the scheduler): made in one process, they are read there
//! live and never written. Only results kept live gain from that: a task of a prefix whose
//! last result was small (it travels as bytes anyway) or that has not finished yet goes
//! to the least busy process: it never waits behind its siblings while another is less busy.
//!
//! Not here: the processes, live results and the choice for other jobs (`live.rs`).

use std::collections::{HashMap, HashSet};

use shoal_core::PrefixId;

/// Families remembered at most (the map starts afresh beyond: a family is short-lived).
const FAMILIES_KEPT: usize = 4096;

/// How much longer (in tasks of its kind) a process's queue may be than the shortest for
/// a task whose results are kept live to still go there to join its siblings.
const SIBLING_SLACK_TASKS: f64 = 8.0;

/// Where the tasks of each family went. A task goes where most of its families' tasks
/// went, unless that process's queue is much longer than the shortest (a greedy streaming
/// partition, as Dask co-assigns root tasks).
#[derive(Default)]
pub(super) struct Families {
    placed: HashMap<u64, Vec<u32>>,
    /// Prefixes whose last result was kept live (or written into the store): large.
    live_prefixes: HashSet<PrefixId>,
}

impl Families {
    /// How many tasks of these families went to the process at `index`.
    fn affinity(&self, families: &[u64], index: usize) -> u32 {
        families
            .iter()
            .filter_map(|f| self.placed.get(f).and_then(|counts| counts.get(index)))
            .sum()
    }

    /// The process for a task of `prefix` and `families` among `open` ones (index,
    /// expected run time queued there): of those whose queue is at most
    /// [`SIBLING_SLACK_TASKS`] tasks of `expected_us` longer than the shortest (no longer,
    /// unless the prefix's results are kept live), the one its families' tasks went to
    /// most, then the least busy.
    pub(super) fn choose(
        &self,
        prefix: PrefixId,
        families: &[u64],
        open: &[(usize, f64)],
        expected_us: f64,
    ) -> Option<usize> {
        let shortest = open.iter().map(|&(_, q)| q).fold(f64::INFINITY, f64::min);
        let slack = if self.live_prefixes.contains(&prefix) {
            SIBLING_SLACK_TASKS * expected_us
        } else {
            0.0
        };
        open.iter()
            .filter(|&&(_, q)| q <= shortest + slack)
            .min_by(|&&(a, qa), &&(b, qb)| {
                let (fa, fb) = (self.affinity(families, a), self.affinity(families, b));
                fb.cmp(&fa).then(qa.total_cmp(&qb))
            })
            .map(|&(i, _)| i)
    }

    /// A task of `prefix` finished; `live`: its result was kept live or written into the
    /// store, not sent as bytes.
    pub(super) fn observe(&mut self, prefix: PrefixId, live: bool) {
        if live {
            self.live_prefixes.insert(prefix);
        } else {
            self.live_prefixes.remove(&prefix);
        }
    }

    /// A task of these families went to the process at `index` (of `slots`).
    pub(super) fn record(&mut self, families: &[u64], index: usize, slots: usize) {
        if self.placed.len() + families.len() > FAMILIES_KEPT {
            self.placed.clear();
        }
        for f in families {
            self.placed.entry(*f).or_insert_with(|| vec![0; slots])[index] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LARGE: PrefixId = PrefixId(1);
    const SMALL: PrefixId = PrefixId(2);

    /// Siblings whose results are kept live follow each other to one process while its
    /// queue stays within the slack; new families go to the least busy one.
    #[test]
    fn live_siblings_go_together_within_the_slack() {
        let mut families = Families::default();
        families.observe(LARGE, true);
        let even = [(0, 0.0), (1, 0.0)];
        assert_eq!(
            families.choose(LARGE, &[7], &even, 100.0),
            Some(0),
            "a tie goes to the first"
        );
        families.record(&[7], 0, 2);
        // Process 0 is now busier, but within 8 tasks of 100 us: the sibling joins it.
        assert_eq!(
            families.choose(LARGE, &[7, 9], &[(0, 700.0), (1, 0.0)], 100.0),
            Some(0)
        );
        // Beyond the slack it goes to the shorter queue.
        assert_eq!(
            families.choose(LARGE, &[7], &[(0, 900.0), (1, 0.0)], 100.0),
            Some(1)
        );
        // A task of another family goes where the queue is shortest.
        assert_eq!(
            families.choose(LARGE, &[8], &[(0, 300.0), (1, 200.0)], 100.0),
            Some(1)
        );
        // Two of its families on process 1 outweigh one on process 0.
        families.record(&[8, 9], 1, 2);
        families.record(&[9], 1, 2);
        assert_eq!(
            families.choose(LARGE, &[7, 9], &[(0, 0.0), (1, 0.0)], 100.0),
            Some(1)
        );
        // Only processes with room are offered; none open, no choice.
        assert_eq!(families.choose(LARGE, &[7], &[(1, 500.0)], 100.0), Some(1));
        assert_eq!(families.choose(LARGE, &[7], &[], 100.0), None);
    }

    /// A sibling whose results travel as bytes (or whose prefix has not finished a task
    /// yet) never waits behind its family while another process is less busy; the family
    /// only breaks ties. A prefix whose results turn small loses the slack.
    #[test]
    fn small_siblings_go_to_the_least_busy() {
        let mut families = Families::default();
        families.record(&[7], 0, 2);
        let busy = [(0, 100.0), (1, 0.0)];
        assert_eq!(
            families.choose(SMALL, &[7], &busy, 100.0),
            Some(1),
            "unknown prefix"
        );
        families.observe(SMALL, false);
        assert_eq!(
            families.choose(SMALL, &[7], &busy, 100.0),
            Some(1),
            "small results"
        );
        assert_eq!(
            families.choose(SMALL, &[7], &[(0, 0.0), (1, 0.0)], 100.0),
            Some(0),
            "a tie goes to the family"
        );
        families.observe(SMALL, true);
        assert_eq!(
            families.choose(SMALL, &[7], &busy, 100.0),
            Some(0),
            "now kept live"
        );
        families.observe(SMALL, false);
        assert_eq!(
            families.choose(SMALL, &[7], &busy, 100.0),
            Some(1),
            "small again"
        );
    }
}
