//! Task prefixes (Dask's `key_split`: `inc-3f2a…` → `inc`, `('sum-abc', 4)` → `sum`;
//! unlike Dask, trailing digits go too, so numbered keys `t0`, `t1`, … share `t`) interned
//! into a bounded arena ([`MAX_PREFIXES`]; more distinct ones share `Other`), with a moving
//! average of the measured durations of each.
//! The autoscaling estimate weights queued work by them. Not here: placement (it uses the
//! global average) or anything per task beyond the one [`PrefixId`] the core keeps.

use hashbrown::HashMap;

use crate::ids::PrefixId;

/// Most distinct prefixes kept; tasks of further ones count as `Other`. Keeps the arena
/// small on a long-lived cluster whose keys are all distinct.
pub const MAX_PREFIXES: usize = 4096;
const OVERFLOW: &str = "Other";

/// Weight of a new measurement in a prefix's moving average.
const ALPHA: f64 = 0.2;

/// Dask's `key_split` applied to a Shoal key string (Dask keys as the Python client
/// spells them: tuples by their `repr`, strings as they are).
pub fn key_split(key: &str) -> &str {
    let mut words = key.split('-');
    let first = words.next().unwrap_or("");
    let Some(c) = first.chars().next() else {
        return "Other";
    };
    let head = if c.is_alphabetic() {
        first
    } else {
        first
            .split(',')
            .next()
            .unwrap_or("")
            .trim_matches(|c| matches!(c, '_' | '\'' | '(' | ')' | '"'))
    };
    // Following words join the prefix while they are alphabetic and not an 8-digit hex
    // token (`finalize-hlgfinalize`, not `x-deadbeef`).
    let mut end = head.len();
    let base = head.as_ptr() as usize - key.as_ptr() as usize;
    // Words can be joined only when the head ends where the first word does.
    let joinable = base + head.len() == first.len();
    for word in words {
        let alpha = !word.is_empty() && word.chars().all(char::is_alphabetic);
        let hex8 = word.len() == 8 && word.chars().all(|c| c.is_ascii_hexdigit());
        if alpha && !hex8 && joinable {
            end = word.as_ptr() as usize - key.as_ptr() as usize + word.len() - base;
        } else {
            break;
        }
    }
    let result = &key[base..base + end];
    if result.is_empty() {
        return "Other";
    }
    if result.len() == 32 && result.chars().all(|c| matches!(c, 'a'..='f' | '0'..='9')) {
        return "data";
    }
    // Numbered keys (`t17`, `part3`) are instances of one prefix.
    match result.trim_end_matches(|c: char| c.is_ascii_digit()) {
        "" => result,
        trimmed => trimmed,
    }
}

/// The prefix arena: names, and the moving average of each one's measured durations.
#[derive(Debug, Default)]
pub struct Prefixes {
    names: Vec<Box<str>>,
    index: HashMap<Box<str>, PrefixId>,
    /// Microseconds; `None` until a task of the prefix finished.
    duration_us: Vec<Option<f64>>,
    /// The last interned (key prefix, id): graphs come in runs of one prefix.
    last: Option<PrefixId>,
}

impl Prefixes {
    /// The id of a key's prefix, interning it when new.
    pub fn intern_key(&mut self, key: &str) -> PrefixId {
        let name = key_split(key);
        if let Some(last) = self.last
            && &*self.names[last.index()] == name
        {
            return last;
        }
        let id = match self.index.get(name) {
            Some(&id) => id,
            None if self.names.len() >= MAX_PREFIXES => self.add(OVERFLOW),
            None => self.add(name),
        };
        self.last = Some(id);
        id
    }

    /// The id of `name`, added when new.
    fn add(&mut self, name: &str) -> PrefixId {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = PrefixId(self.names.len() as u32);
        self.names.push(name.into());
        self.index.insert(name.into(), id);
        self.duration_us.push(None);
        id
    }

    /// How many prefixes are interned.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The id of an interned prefix name.
    pub fn find(&self, name: &str) -> Option<PrefixId> {
        self.index.get(name).copied()
    }

    pub fn name(&self, id: PrefixId) -> &str {
        &self.names[id.index()]
    }

    /// Folds one measured duration into the prefix's average.
    pub fn observe(&mut self, id: PrefixId, duration_us: f64) {
        let slot = &mut self.duration_us[id.index()];
        *slot = Some(match *slot {
            Some(avg) => avg * (1.0 - ALPHA) + duration_us * ALPHA,
            None => duration_us,
        });
    }

    /// The prefix's average duration, `None` before any of its tasks finished.
    pub fn duration_us(&self, id: PrefixId) -> Option<f64> {
        self.duration_us[id.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prefixes follow Dask's key_split on the keys the Python client sends.
    #[test]
    fn key_split_like_dask() {
        assert_eq!(key_split("inc-3f2a9c1d0e"), "inc");
        assert_eq!(key_split("('sum-abc123', 4)"), "sum");
        assert_eq!(key_split("('sum-abc123', 4, 2)"), "sum");
        assert_eq!(key_split("slow_inc-12"), "slow_inc");
        assert_eq!(
            key_split("finalize-hlgfinalize-1234"),
            "finalize-hlgfinalize"
        );
        assert_eq!(key_split("x-deadbeef"), "x");
        assert_eq!(
            key_split("('finalize-hlgfinalize-ab12', 0)"),
            "finalize-hlgfinalize"
        );
        assert_eq!(key_split("0123456789abcdef0123456789abcdef"), "data");
        assert_eq!(key_split(""), "Other");
        assert_eq!(key_split("plain"), "plain");
        assert_eq!(key_split("t17"), "t");
        assert_eq!(key_split("('part3-ab12', 0)"), "part");
        assert_eq!(key_split("42"), "42");
    }

    /// The arena stays bounded whatever the keys: past MAX_PREFIXES distinct prefixes,
    /// tasks share `Other`.
    #[test]
    fn arena_is_bounded() {
        let mut p = Prefixes::default();
        for i in 0..MAX_PREFIXES + 50 {
            p.intern_key(&format!("f{}x-1", i));
        }
        assert_eq!(p.len(), MAX_PREFIXES + 1);
        let other = p.intern_key("brand_new-1");
        assert_eq!(p.name(other), "Other");
        assert_eq!(p.len(), MAX_PREFIXES + 1);
    }

    /// Each prefix keeps its own moving average; unknown prefixes have none.
    #[test]
    fn durations_per_prefix() {
        let mut p = Prefixes::default();
        let a = p.intern_key("inc-1");
        let b = p.intern_key("('sum-2', 0)");
        assert_eq!(p.intern_key("inc-2"), a);
        assert_eq!(p.duration_us(a), None);
        p.observe(a, 100.0);
        p.observe(a, 200.0);
        assert_eq!(p.duration_us(a), Some(120.0));
        assert_eq!(p.duration_us(b), None);
        assert_eq!(p.name(b), "sum");
    }
}
