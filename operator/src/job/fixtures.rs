//! Test-only builders of `ShoalJob`s (no client).

use super::build::{ResolvedJob, resolve};
use crate::crd::{ShoalJob, ShoalJobSpec};
use crate::fixtures::defaults;
use jiff::Timestamp;

pub fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Job `name` in namespace `ns`: a one-worker cluster, a Python one-liner, one retry.
pub fn job(name: &str) -> ShoalJob {
    let spec: ShoalJobSpec = serde_json::from_value(serde_json::json!({
        "cluster": {"workers": {"replicas": 1}},
        "runner": {"command": ["python3", "-c", "print(1)"], "env": [{"name": "A", "value": "b"}]},
        "backoffLimit": 1,
    }))
    .unwrap_or_else(|e| unreachable!("{e}"));
    let mut job = ShoalJob::new(name, spec);
    job.metadata.namespace = Some("ns".to_owned());
    job.metadata.uid = Some(format!("uid-{name}"));
    job.metadata.generation = Some(1);
    job
}

/// Job `nightly` with `edit` applied to its spec, resolved for version 0.3.0.
pub fn resolved(edit: impl FnOnce(&mut ShoalJobSpec)) -> ResolvedJob {
    let mut job = job("nightly");
    edit(&mut job.spec);
    resolve(&job, &defaults("0.3.0")).unwrap_or_else(|e| unreachable!("{e}"))
}
