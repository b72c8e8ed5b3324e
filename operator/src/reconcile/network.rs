//! Pure: the NetworkPolicy that keeps clusters of different people apart. One per
//! cluster, `<cluster>-scheduler`, owned by it and selecting its scheduler pod: the gRPC
//! port (8786) admits only the cluster's own worker pods, pods carrying the cluster's
//! client label (`client.shoal.dev/<cluster>: "true"`, same namespace) and the
//! operator's pods; the HTTP port (8787: the token-guarded dashboard, and `/metrics` and
//! health, unauthenticated by design) stays open. The token still guards every gRPC call;
//! the policy is a second fence where the network plugin enforces policies. Also the
//! operator's settings for it (from flags) and the label checks they need. No client.

use super::build;
use super::validate::ValidatedCluster;
use crate::names::{self, COMPONENT_SCHEDULER, COMPONENT_WORKER};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The label every namespace carries with its own name (set by the API server).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Whether clusters get a NetworkPolicy (`--network-policy`), and who the operator is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Settings {
    /// No NetworkPolicy; one left from before is deleted.
    #[default]
    Disabled,
    /// Every cluster gets one admitting this operator.
    Enabled(OperatorPeer),
}

/// The operator's pods, as a NetworkPolicy peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorPeer {
    /// The operator's namespace.
    pub namespace: String,
    /// Labels of the operator's pods; empty: every pod of its namespace.
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelError {
    #[error("{0:?} is not `key=value`; write the operator's pod labels as `k=v,k=v`")]
    NotKeyValue(String),
    #[error(
        "label key {0:?} is invalid: a name part of at most 63 characters (letters, digits, \
         `-`, `_`, `.`, starting and ending with a letter or digit), optionally after a \
         DNS-subdomain prefix and `/`"
    )]
    BadKey(String),
    #[error(
        "label value {0:?} is invalid: at most 63 characters (letters, digits, `-`, `_`, `.`, \
         starting and ending with a letter or digit)"
    )]
    BadValue(String),
}

/// A label name part or value: at most 63 characters of `[A-Za-z0-9._-]`, starting and
/// ending with a letter or digit (a value may also be empty).
pub fn valid_label_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    let edge = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    !text.is_empty()
        && text.len() <= 63
        && edge(bytes.first())
        && edge(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A label key: `name` or `prefix/name`, the prefix a DNS subdomain (253 characters).
pub fn valid_label_key(key: &str) -> bool {
    match key.split_once('/') {
        None => valid_label_name(key),
        Some((prefix, name)) => {
            let subdomain = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|part| {
                    valid_label_name(part)
                        && part
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                });
            subdomain && valid_label_name(name)
        }
    }
}

/// Parses `k=v,k=v` (the chart's selector labels of the operator's pods); empty: none.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, LabelError> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| LabelError::NotKeyValue(pair.to_owned()))?;
        let (key, value) = (key.trim(), value.trim());
        if !valid_label_key(key) {
            return Err(LabelError::BadKey(key.to_owned()));
        }
        if !value.is_empty() && !valid_label_name(value) {
            return Err(LabelError::BadValue(value.to_owned()));
        }
        labels.insert(key.to_owned(), value.to_owned());
    }
    Ok(labels)
}

fn selector(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    }
}

fn pods(labels: &[(&str, &str)]) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(selector(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )),
        ..NetworkPolicyPeer::default()
    }
}

fn tcp(port: i32) -> Option<Vec<NetworkPolicyPort>> {
    Some(vec![NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_owned()),
        end_port: None,
    }])
}

/// The cluster's NetworkPolicy `<cluster>-scheduler` (see the module header).
pub fn scheduler_policy(cluster: &ValidatedCluster, operator: &OperatorPeer) -> NetworkPolicy {
    let client_label = names::client_label(&cluster.name);
    let operator_pods = NetworkPolicyPeer {
        namespace_selector: Some(selector(BTreeMap::from([(
            NAMESPACE_NAME_LABEL.to_owned(),
            operator.namespace.clone(),
        )]))),
        // No labels known: every pod of the operator's namespace.
        pod_selector: (!operator.labels.is_empty()).then(|| selector(operator.labels.clone())),
        ip_block: None,
    };
    NetworkPolicy {
        metadata: build::metadata(
            cluster,
            names::scheduler_network_policy(&cluster.name),
            COMPONENT_SCHEDULER,
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(BTreeMap::from([
                (names::LABEL_CLUSTER.to_owned(), cluster.name.clone()),
                (
                    names::LABEL_COMPONENT.to_owned(),
                    COMPONENT_SCHEDULER.to_owned(),
                ),
            ]))),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    ports: tcp(names::SCHEDULER_PORT),
                    from: Some(vec![
                        pods(&[
                            (names::LABEL_CLUSTER, &cluster.name),
                            (names::LABEL_COMPONENT, COMPONENT_WORKER),
                        ]),
                        pods(&[(&client_label, "true")]),
                        operator_pods,
                    ]),
                },
                // No `from`: any source.
                NetworkPolicyIngressRule {
                    ports: tcp(names::DASHBOARD_PORT),
                    from: None,
                },
            ]),
            egress: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{cluster, defaults};
    use crate::reconcile::validate::validate;
    use serde_json::json;

    fn operator(labels: &str) -> OperatorPeer {
        OperatorPeer {
            namespace: "shoal-system".to_owned(),
            labels: parse_labels(labels).unwrap_or_else(|e| unreachable!("{e}")),
        }
    }

    fn policy(labels: &str) -> serde_json::Value {
        let c = validate(&cluster("demo"), &[], &defaults("0.3.0")).unwrap_or_else(|e| {
            unreachable!("{e}");
        });
        serde_json::to_value(scheduler_policy(&c, &operator(labels))).unwrap_or_default()
    }

    /// The policy is `<c>-scheduler`, controlled by the cluster, managed by the operator
    /// (so the controller's watch of owned objects sees it), selecting the scheduler pod.
    #[test]
    fn policy_is_owned_and_selects_the_scheduler() {
        let p = policy("app.kubernetes.io/name=shoal-operator");
        assert_eq!(p["apiVersion"], "networking.k8s.io/v1");
        assert_eq!(p["kind"], "NetworkPolicy");
        assert_eq!(p["metadata"]["name"], "demo-scheduler");
        assert_eq!(p["metadata"]["namespace"], "ns");
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["uid"], &owner["controller"]),
            (&json!("ShoalCluster"), &json!("uid-demo"), &json!(true))
        );
        assert_eq!(
            p["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "shoal-operator"
        );
        assert_eq!(
            p["spec"]["podSelector"],
            json!({"matchLabels": {"shoal.dev/cluster": "demo", "app.kubernetes.io/component": "scheduler"}})
        );
        assert_eq!(p["spec"]["policyTypes"], json!(["Ingress"]));
    }

    /// gRPC admits exactly the cluster's workers, its client-labelled pods and the
    /// operator's pods in the operator's namespace; HTTP admits anyone.
    #[test]
    fn grpc_admits_workers_clients_and_operator_http_is_open() {
        let p = policy("app.kubernetes.io/name=shoal-operator,app.kubernetes.io/instance=shoal");
        let rules = p["spec"]["ingress"].as_array().cloned().unwrap_or_default();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[0]["ports"],
            json!([{"port": 8786, "protocol": "TCP"}])
        );
        assert_eq!(
            rules[0]["from"],
            json!([
                {"podSelector": {"matchLabels": {"shoal.dev/cluster": "demo", "app.kubernetes.io/component": "worker"}}},
                {"podSelector": {"matchLabels": {"client.shoal.dev/demo": "true"}}},
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shoal-system"}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "shoal-operator", "app.kubernetes.io/instance": "shoal"}}
                }
            ])
        );
        assert_eq!(
            rules[1],
            json!({"ports": [{"port": 8787, "protocol": "TCP"}]})
        );
    }

    /// Without known operator labels the operator's whole namespace is admitted (never
    /// an empty pod selector that would read as "every pod" in every namespace).
    #[test]
    fn unknown_operator_labels_admit_the_operator_namespace() {
        let p = policy("");
        let peer = &p["spec"]["ingress"][0]["from"][2];
        assert_eq!(
            peer,
            &json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shoal-system"}}})
        );
    }

    /// The chart's `k=v,k=v` parses; malformed pairs, keys and values are refused saying how.
    #[test]
    fn operator_labels_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_labels(" a=b , example.com/c=d ,").map(|l| l.len()),
            Ok(2)
        );
        assert_eq!(parse_labels(""), Ok(BTreeMap::new()));
        assert_eq!(
            parse_labels("a=").map(|l| l["a"].clone()),
            Ok(String::new())
        );
        assert!(matches!(
            parse_labels("ab"),
            Err(LabelError::NotKeyValue(_))
        ));
        assert!(matches!(parse_labels("-a=b"), Err(LabelError::BadKey(_))));
        assert!(matches!(
            parse_labels("Ex.com/a=b"),
            Err(LabelError::BadKey(_))
        ));
        assert!(matches!(parse_labels("/a=b"), Err(LabelError::BadKey(_))));
        assert!(matches!(
            parse_labels("a=b c"),
            Err(LabelError::BadValue(_))
        ));
        let long = "v".repeat(64);
        assert!(matches!(
            parse_labels(&format!("a={long}")),
            Err(LabelError::BadValue(_))
        ));
    }

    /// Label names: 63 characters at most, alphanumeric at both ends.
    #[test]
    fn label_names_follow_kubernetes_rules() {
        assert!(valid_label_name("demo"));
        assert!(valid_label_name("a.b_c-d"));
        assert!(valid_label_name(&"x".repeat(63)));
        assert!(!valid_label_name(&"x".repeat(64)));
        assert!(!valid_label_name(""));
        assert!(!valid_label_name("a-"));
        assert!(valid_label_key(&names::client_label("demo")));
    }
}
