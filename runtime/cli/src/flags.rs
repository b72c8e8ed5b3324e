//! Parsing of structured CLI values: `--resources k=v,k=v`. Not here: the flags themselves
//! (main.rs) or what the values mean (the core's `Resources`).

/// Why a `--resources` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResourcesError {
    #[error(
        "{entry:?} is not name=amount; expected --resources (or SHOAL_WORKER_RESOURCES) as \
         name=amount pairs separated by commas, e.g. highmem=1,gpu=2"
    )]
    NotPair { entry: String },
    #[error(
        "amount {amount:?} of resource {name:?} is not a non-negative number; expected \
         --resources (or SHOAL_WORKER_RESOURCES) like highmem=1,gpu=2"
    )]
    BadAmount { name: String, amount: String },
}

/// The parsed value of `--resources` (a newtype: clap treats a bare `Vec` as repeats).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceList(pub Vec<(String, f64)>);

/// `--resources`' value parser.
pub fn resource_list(value: &str) -> Result<ResourceList, ResourcesError> {
    parse_resources(value).map(ResourceList)
}

/// `highmem=1,gpu=2` → [("highmem", 1.0), ("gpu", 2.0)]; an empty value offers nothing.
pub fn parse_resources(value: &str) -> Result<Vec<(String, f64)>, ResourcesError> {
    let mut out = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, amount)) = entry.split_once('=') else {
            return Err(ResourcesError::NotPair {
                entry: entry.to_string(),
            });
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(ResourcesError::NotPair {
                entry: entry.to_string(),
            });
        }
        let parsed: f64 = amount
            .trim()
            .parse()
            .ok()
            .filter(|a: &f64| a.is_finite() && *a >= 0.0)
            .ok_or_else(|| ResourcesError::BadAmount {
                name: name.to_string(),
                amount: amount.trim().to_string(),
            })?;
        out.push((name.to_string(), parsed));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pairs parse; malformed values are refused naming the flag and the expected form.
    #[test]
    fn resources_flag() {
        assert_eq!(
            parse_resources("highmem=1, gpu=2.5"),
            Ok(vec![("highmem".into(), 1.0), ("gpu".into(), 2.5)])
        );
        assert_eq!(parse_resources(""), Ok(vec![]));
        for bad in ["highmem", "=1", "gpu=x", "gpu=-1"] {
            let err = parse_resources(bad).expect_err("refused").to_string();
            assert!(
                err.contains("--resources") && err.contains("highmem=1,gpu=2"),
                "{err}"
            );
        }
    }
}
