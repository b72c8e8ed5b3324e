//! Stage 1, needs the client: everything the reconcile of one cluster looks at. The
//! cluster's worker groups, the pods it controls (by label, then by owner uid, so a
//! stranger's pod with the same labels is never touched), its token, if it exists, and
//! (only with `spec.clientLease`) the client's Lease `<cluster>-client`, if it exists.

use crate::crd::{ShoalCluster, ShoalWorkerGroup};
use crate::names;
use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::ListParams;
use kube::{Api, Client};

#[derive(Debug, thiserror::Error)]
#[error("reading the {what} of cluster {namespace}/{cluster} failed")]
pub struct ReadError {
    pub what: &'static str,
    pub cluster: String,
    pub namespace: String,
    #[source]
    pub source: kube::Error,
}

/// What exists now.
pub struct Observed {
    pub groups: Vec<ShoalWorkerGroup>,
    pub pods: Vec<Pod>,
    /// The token in the cluster's Secret, when the Secret exists.
    pub token: Option<String>,
    /// What the client Lease says; `None` without `spec.clientLease` or when it does not
    /// exist.
    pub lease: Option<super::lease::Seen>,
}

pub async fn read(
    client: &Client,
    cluster: &ShoalCluster,
    token_secret: &str,
) -> Result<Observed, ReadError> {
    let namespace = cluster.metadata.namespace.clone().unwrap_or_default();
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let uid = cluster.metadata.uid.clone();
    let fail = |what: &'static str| {
        let (cluster, namespace) = (name.clone(), namespace.clone());
        move |source| ReadError {
            what,
            cluster,
            namespace,
            source,
        }
    };

    let groups = Api::<ShoalWorkerGroup>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .map_err(fail("worker groups"))?
        .items;
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default().labels(&names::cluster_selector(&name)))
        .await
        .map_err(fail("pods"))?
        .items
        .into_iter()
        .filter(|pod| {
            pod.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
        })
        .collect();
    let token = Api::<Secret>::namespaced(client.clone(), &namespace)
        .get_opt(token_secret)
        .await
        .map_err(fail("token Secret"))?
        .and_then(|secret| secret.data)
        .and_then(|mut data| data.remove(names::TOKEN_KEY))
        .map(|ByteString(bytes)| String::from_utf8_lossy(&bytes).into_owned());
    let lease = match cluster.spec.client_lease {
        Some(_) => Api::<Lease>::namespaced(client.clone(), &namespace)
            .get_opt(&names::client_lease(&name))
            .await
            .map_err(fail("client Lease"))?
            .as_ref()
            .map(super::lease::seen),
        None => None,
    };
    Ok(Observed {
        groups,
        pods,
        token,
        lease,
    })
}
