//! Pure: what each worker of a group offers, as the scheduler's `GetAdaptiveTarget` is
//! told (cores, memory limit in bytes, abstract task resources), from the pool spec.
//! Unknown values are 0, as the wire contract says. No client.

use super::plan::Raised;
use super::validate::ValidatedCluster;
use crate::scheduler_api::GroupOffer;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A Kubernetes quantity as a number (`500m` → 0.5, `2Gi` → 2147483648); `None` when
/// it is not one.
pub fn quantity(q: &Quantity) -> Option<f64> {
    let text = q.0.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

/// Every group of the cluster, as the scheduler is told; a memory limit `raised` by
/// `oomPolicy` is the one new workers of the group get.
pub fn offers(cluster: &ValidatedCluster, raised: &Raised) -> Vec<GroupOffer> {
    cluster
        .groups
        .iter()
        .map(|group| {
            let limits = group
                .pool
                .resources
                .as_ref()
                .and_then(|r| r.limits.as_ref());
            let limit = |name: &str| limits.and_then(|l| l.get(name)).and_then(quantity);
            let cores = group.pool.cores.map(f64::from).or_else(|| limit("cpu"));
            GroupOffer {
                name: group.name.clone(),
                // Saturating float-to-int casts: out of range becomes the bound.
                cores: cores.map_or(0, |c| c.floor().max(1.0) as u32),
                memory_limit: raised
                    .get(&group.name)
                    .copied()
                    .or_else(|| limit("memory").map(|m| m as u64))
                    .unwrap_or(0),
                resources: group.pool.task_resources.clone(),
            }
        })
        .collect()
}

/// The target duration to ask with: the shortest of the groups that autoscale (the
/// contract carries one per call), else the default.
pub fn target_duration(cluster: &ValidatedCluster) -> f64 {
    cluster
        .groups
        .iter()
        .filter(|g| g.pool.autoscaling.enabled)
        .map(|g| g.pool.autoscaling.target_duration_seconds)
        .min()
        .map_or(5.0, f64::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{cluster, defaults};
    use crate::reconcile::validate::validate;
    use k8s_openapi::api::core::v1::ResourceRequirements;
    use std::collections::BTreeMap;

    /// Quantities in the forms Kubernetes writes them become numbers; junk is None.
    #[test]
    fn quantities() {
        let q = |s: &str| quantity(&Quantity(s.to_owned()));
        assert_eq!(q("500m"), Some(0.5));
        assert_eq!(q("2Gi"), Some(2.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(q("1.5"), Some(1.5));
        assert_eq!(q("3G"), Some(3e9));
        assert_eq!(q("lots"), None);
    }

    /// Cores come from `cores` or the CPU limit, memory from the limit, resources as given.
    #[test]
    fn offers_from_the_pool() {
        let mut c = cluster("demo");
        c.spec.workers.resources = Some(ResourceRequirements {
            limits: Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity("2500m".to_owned())),
                ("memory".to_owned(), Quantity("1Gi".to_owned())),
            ])),
            ..ResourceRequirements::default()
        });
        c.spec.workers.task_resources = BTreeMap::from([("highmem".to_owned(), 1.0)]);
        let v = validate(&c, &[], &defaults("0.3.0")).expect("valid");
        let offer = &offers(&v, &Raised::new())[0];
        assert_eq!((offer.cores, offer.memory_limit), (2, 1 << 30));
        assert_eq!(offer.resources["highmem"], 1.0);
        assert_eq!(target_duration(&v), 5.0);
        let raised = Raised::from([("default".to_owned(), 3 << 29)]);
        assert_eq!(offers(&v, &raised)[0].memory_limit, 3 << 29);
    }
}
