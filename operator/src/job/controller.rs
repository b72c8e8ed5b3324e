//! Wiring: the kube-runtime Controller for `ShoalJob`, re-triggered by the runner pods
//! and the `ShoalCluster` it controls (watched by the `shoal.dev/job` label only). Runs
//! in the operator process next to the cluster controller, after the same leader
//! election, on the same watched namespace, until the shutdown future resolves.

use super::{error_policy, reconcile};
use crate::controller::api;
use crate::crd::{ShoalCluster, ShoalJob};
use crate::names;
use crate::reconcile::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::Controller;
use kube::runtime::watcher;
use std::future::Future;
use std::sync::Arc;

/// The future that runs the job controller.
pub fn controller(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> {
    let client = ctx.client.clone();
    let made = watcher::Config::default().labels(names::LABEL_JOB);
    Controller::new(
        api::<ShoalJob>(&client, namespace),
        watcher::Config::default(),
    )
    .owns(api::<Pod>(&client, namespace), made.clone())
    .owns(api::<ShoalCluster>(&client, namespace), made)
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx)
    .for_each(|result| async move {
        match result {
            Ok((object, _)) => {
                tracing::debug!(job = %object.name, namespace = ?object.namespace, "reconciled");
            }
            Err(error) => tracing::debug!(%error, "job reconcile not completed"),
        }
    })
}
