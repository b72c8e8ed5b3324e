//! Wiring: the kube-runtime Controller for `ShoalCluster`, re-triggered by the pods,
//! Services and NetworkPolicies it owns and by `ShoalWorkerGroup`s naming it. Secrets are
//! read by name only, never watched, so the operator needs no right to list Secrets. Runs
//! until the shutdown future resolves, finishing in-flight reconciles first.

use crate::crd::{ShoalCluster, ShoalWorkerGroup};
use crate::names;
use crate::reconcile::{Context, error_policy, reconcile};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use std::future::Future;
use std::sync::Arc;

/// The API of `K` in the watched namespace, or in every namespace.
pub(crate) fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Builds the controller; returns its cache (for metrics) and the future that runs it.
pub fn controller(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> (Store<ShoalCluster>, impl Future<Output = ()>) {
    let client = ctx.client.clone();
    let owned = watcher::Config::default()
        .labels(&format!("app.kubernetes.io/managed-by={}", names::MANAGER));
    let controller = Controller::new(
        api::<ShoalCluster>(&client, namespace),
        watcher::Config::default(),
    )
    .owns(api::<Pod>(&client, namespace), owned.clone())
    .owns(api::<Service>(&client, namespace), owned.clone())
    .watches(
        api::<ShoalWorkerGroup>(&client, namespace),
        watcher::Config::default(),
        |group| {
            let namespace = group.namespace().unwrap_or_default();
            Some(ObjectRef::<ShoalCluster>::new(&group.spec.cluster).within(&namespace))
        },
    )
    .graceful_shutdown_on(shutdown);
    // A NetworkPolicy edited or deleted by hand is repaired at once.
    let controller = match ctx.network {
        crate::reconcile::network::Settings::Enabled(_) => controller.owns(
            api::<k8s_openapi::api::networking::v1::NetworkPolicy>(&client, namespace),
            owned,
        ),
        crate::reconcile::network::Settings::Disabled => controller,
    };
    let store = controller.store();
    let run = controller.run(reconcile, error_policy, ctx).for_each(|result| async move {
        match result {
            Ok((object, _)) => tracing::debug!(cluster = %object.name, namespace = ?object.namespace, "reconciled"),
            Err(error) => tracing::debug!(%error, "reconcile not completed"),
        }
    });
    (store, run)
}
