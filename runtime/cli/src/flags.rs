//! Parsing of structured CLI values: `--resources k=v,k=v`, byte sizes (`512Mi`), memory
//! threshold fractions. Not here: the flags themselves
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

/// Why a byte size or a fraction was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizeError {
    #[error(
        "{value:?} is not a size; expected bytes (536870912) or a number with a unit: \
         Ki, Mi, Gi, Ti (powers of 1024) or K, M, G, T (powers of 1000), e.g. 512Mi or 2G"
    )]
    Size { value: String },
    #[error("{value:?} is not a fraction between 0 and 1 (0 turns the step off), e.g. 0.8")]
    Fraction { value: String },
}

/// `512Mi`, `2G`, `1073741824` → bytes (the units Kubernetes quantities use).
pub fn byte_size(value: &str) -> Result<u64, SizeError> {
    let bad = || SizeError::Size {
        value: value.to_string(),
    };
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let scale: f64 = match unit {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "K" | "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        _ => return Err(bad()),
    };
    let bytes = number * scale;
    if !bytes.is_finite() || bytes < 1.0 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// A memory threshold: a fraction in [0, 1].
pub fn fraction(value: &str) -> Result<f64, SizeError> {
    match value.trim().parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(SizeError::Fraction {
            value: value.to_string(),
        }),
    }
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

    /// Sizes take Kubernetes' units; nonsense names the accepted forms.
    #[test]
    fn byte_sizes() {
        assert_eq!(byte_size("536870912"), Ok(536_870_912));
        assert_eq!(byte_size("512Mi"), Ok(512 << 20));
        assert_eq!(byte_size("1.5Gi"), Ok(3 << 29));
        assert_eq!(byte_size("2G"), Ok(2_000_000_000));
        let err = byte_size("2GB").expect_err("unknown unit");
        assert!(err.to_string().contains("512Mi"), "{err}");
        assert!(byte_size("0").is_err() && byte_size("").is_err());
    }

    /// Thresholds are fractions in [0, 1].
    #[test]
    fn fractions() {
        assert_eq!(fraction("0.8"), Ok(0.8));
        assert_eq!(fraction("0"), Ok(0.0));
        assert!(fraction("80").is_err() && fraction("x").is_err());
    }
}
