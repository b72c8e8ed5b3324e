//! Harness for the operator's control-plane tests: a namespace of its own on the test
//! bed's API server, kubectl for what a user types, a kube client for reading, and the
//! operator as a real process (killed by PID when the test ends).

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: these tests need the e2e control plane; run `make e2e-control-plane`")
    })
}

pub struct Bed {
    pub namespace: String,
    pub client: Client,
    kubectl: String,
}

impl Bed {
    /// A fresh namespace (named after the test) with the CRDs installed.
    pub async fn new(test: &str) -> Self {
        let kubectl = required_env("SHOAL_E2E_KUBECTL");
        let _ = required_env("KUBECONFIG");
        let suffix: u32 = rand::random();
        let namespace = format!("op-{test}-{suffix:08x}");
        let bed = Bed {
            namespace,
            client: Client::try_default()
                .await
                .expect("a kube client from KUBECONFIG"),
            kubectl,
        };
        let crds = repo_root().join("crds/shoal.dev.yaml");
        bed.run(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                &crds.to_string_lossy(),
            ],
            None,
            false,
        );
        bed.run(
            &[
                "wait",
                "--for=condition=Established",
                "crd/shoalclusters.shoal.dev",
                "crd/shoalworkergroups.shoal.dev",
                "crd/shoaljobs.shoal.dev",
                "--timeout=60s",
            ],
            None,
            false,
        );
        bed.run(&["create", "namespace", &bed.namespace], None, false);
        bed
    }

    fn run(&self, args: &[&str], stdin: Option<&str>, namespaced: bool) -> std::process::Output {
        let mut command = Command::new(&self.kubectl);
        if namespaced {
            command.args(["-n", &self.namespace]);
        }
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("kubectl runs");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write manifest");
        }
        let output = child.wait_with_output().expect("kubectl finishes");
        if !namespaced && !output.status.success() {
            panic!(
                "kubectl {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        output
    }

    /// kubectl in the test's namespace; panics with its stderr when it fails.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let output = self.run(args, None, true);
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// One field of an object (`kind/name`), by JSONPath, e.g. `{.spec.workers.replicas}`.
    pub fn field(&self, object: &str, path: &str) -> String {
        self.kubectl(&["get", object, "-o", &format!("jsonpath={path}")])
    }

    pub fn kubectl_apply(&self, manifest: &str) {
        let output = self.run(&["apply", "-f", "-"], Some(manifest), true);
        assert!(
            output.status.success(),
            "applying {manifest} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn kubectl_apply_file(&self, path: &str) {
        self.kubectl(&["apply", "-f", &repo_root().join(path).to_string_lossy()]);
    }

    /// Applies a manifest that must be refused; returns the API server's message.
    pub fn kubectl_apply_refused(&self, manifest: &str) -> String {
        let output = self.run(&["apply", "-f", "-"], Some(manifest), true);
        assert!(
            !output.status.success(),
            "the API server accepted an invalid manifest:\n{manifest}"
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    pub async fn get<K>(&self, name: &str) -> K
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        Api::<K>::namespaced(self.client.clone(), &self.namespace)
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("reading {} {name}: {e}", K::kind(&())))
    }

    /// The namespace's pods that are not being deleted.
    pub async fn pods(&self) -> Vec<Pod> {
        Api::<Pod>::namespaced(self.client.clone(), &self.namespace)
            .list(&ListParams::default())
            .await
            .expect("listing pods")
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    }

    /// Polls `check` until it gives a value; fails naming `what` after 90 s.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(value) = check().await {
                return value;
            }
            assert!(
                start.elapsed() < WAIT,
                "timed out after {WAIT:?} waiting for {what} in namespace {}",
                self.namespace
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until exactly `names` (sorted) are the namespace's pods.
    pub async fn wait_for_pod_names(&self, what: &str, names: &[&str]) -> Vec<Pod> {
        self.wait_for(what, || async {
            let mut pods = self.pods().await;
            pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            let found: Vec<&str> = pods
                .iter()
                .filter_map(|p| p.metadata.name.as_deref())
                .collect();
            (found == names).then_some(pods.clone())
        })
        .await
    }

    /// Waits until exactly `count` worker pods exist (not being deleted).
    pub async fn wait_for_worker_count(&self, count: usize) -> Vec<Pod> {
        self.wait_for(&format!("{count} worker pods"), || async {
            let workers: Vec<Pod> = self
                .pods()
                .await
                .into_iter()
                .filter(|p| {
                    p.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("app.kubernetes.io/component"))
                        .map(String::as_str)
                        == Some("worker")
                })
                .collect();
            (workers.len() == count).then_some(workers)
        })
        .await
    }

    pub fn assert_owned_by(&self, owners: Option<&Vec<OwnerReference>>, uid: &str, what: &str) {
        let owners = owners.unwrap_or_else(|| panic!("{what} has no owner references"));
        assert!(
            owners
                .iter()
                .any(|o| o.uid == uid && o.kind == "ShoalCluster" && o.controller == Some(true)),
            "{what} is not controlled by the cluster: {owners:?}"
        );
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = Command::new(&self.kubectl)
            .args(["delete", "namespace", &self.namespace, "--wait=false"])
            .output();
    }
}

/// The operator binary, watching only the test's namespace, its log in a temp file.
pub struct OperatorProcess {
    child: Child,
    log: PathBuf,
}

impl OperatorProcess {
    pub fn start(bed: &Bed) -> Self {
        Self::start_with(bed, &[])
    }

    /// The operator with extra environment (`--network-policy` and the like, as env).
    pub fn start_with(bed: &Bed, env: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!(
            "shoal-operator-{}-{}.log",
            bed.namespace,
            rand::random::<u16>()
        ));
        let file = std::fs::File::create(&log).expect("operator log file");
        let child = Command::new(env!("CARGO_BIN_EXE_shoal-operator"))
            .env("SHOAL_OPERATOR_WATCH_NAMESPACE", &bed.namespace)
            .env("POD_NAMESPACE", &bed.namespace)
            .env("SHOAL_OPERATOR_METRICS_LISTEN", "127.0.0.1:0")
            .env("SHOAL_LOG", "info,shoal_operator=debug")
            .envs(env.iter().copied())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .spawn()
            .expect("the operator binary starts");
        OperatorProcess { child, log }
    }

    /// SIGKILL, as a crash or an evicted pod would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("---- operator log ({}) ----", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
