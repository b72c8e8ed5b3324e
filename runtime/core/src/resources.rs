//! Abstract resources ("gpu": 1, "highmem": 1): what a worker offers and what a task asks.
//!
//! Resources here are placement constraints: a task runs only on a worker offering at least
//! each amount it asks. They are not counted down per running task (unlike Dask, where a
//! worker offering `gpu=1` runs one `gpu=1` task at a time); a worker's cores bound how
//! many tasks it runs at once. Not here: parsing CLI flags (the edge does that).

/// A set of named amounts, sorted by name, each name once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources(Box<[(Box<str>, f64)]>);

impl Resources {
    /// Builds a set from (name, amount) pairs; a repeated name keeps its last amount.
    pub fn new<N: Into<Box<str>>>(pairs: impl IntoIterator<Item = (N, f64)>) -> Self {
        let mut list: Vec<(Box<str>, f64)> = Vec::new();
        for (name, amount) in pairs {
            let name = name.into();
            match list.iter_mut().find(|(n, _)| *n == name) {
                Some(entry) => entry.1 = amount,
                None => list.push((name, amount)),
            }
        }
        list.sort_by(|a, b| a.0.cmp(&b.0));
        Resources(list.into_boxed_slice())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0.iter().map(|(n, a)| (&**n, *a))
    }

    /// The amount offered of one resource (0 when absent).
    pub fn get(&self, name: &str) -> f64 {
        self.0
            .iter()
            .find(|(n, _)| &**n == name)
            .map_or(0.0, |(_, a)| *a)
    }

    /// Whether these offered resources cover every amount of `request`.
    pub fn satisfies(&self, request: &Resources) -> bool {
        request
            .iter()
            .all(|(name, amount)| self.get(name) >= amount)
    }
}

impl std::fmt::Display for Resources {
    /// `highmem=1,gpu=2`, or `none` for an empty set.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return write!(f, "none");
        }
        let parts: Vec<String> = self.iter().map(|(n, a)| format!("{n}={a}")).collect();
        write!(f, "{}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An offer satisfies a request only when it has at least each asked amount.
    #[test]
    fn satisfies_each_amount() {
        let offer = Resources::new([("highmem", 1.0), ("gpu", 2.0)]);
        assert!(offer.satisfies(&Resources::new([("gpu", 2.0)])));
        assert!(offer.satisfies(&Resources::default()));
        assert!(!offer.satisfies(&Resources::new([("gpu", 3.0)])));
        assert!(!offer.satisfies(&Resources::new([("tpu", 1.0)])));
        assert!(!Resources::default().satisfies(&Resources::new([("gpu", 1.0)])));
        assert_eq!(offer.to_string(), "gpu=2,highmem=1");
    }
}
