//! A real cluster for integration tests: `shoal scheduler` and `shoal worker` processes on
//! 127.0.0.1, killed by PID when the test ends (also when it panics).
#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use shoal_client::Client;
use shoal_proto::auth::Token;
use shoal_proto::v1;

pub const TOKEN: &str = "integration-test-token";

pub fn token() -> Token {
    Token::new(TOKEN).expect("valid token")
}

pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_shoal")
}

pub struct TestCluster {
    pub address: String,
    pub http: String,
    pub dir: tempfile::TempDir,
    scheduler: Child,
    pub workers: Vec<(String, Child)>,
}

impl TestCluster {
    pub fn start(workers: usize, extra_scheduler_args: &[&str]) -> Self {
        Self::start_at("127.0.0.1:0", workers, extra_scheduler_args)
    }

    /// A scheduler listening for gRPC at `listen` (e.g. a port a test reserved).
    pub fn start_at(listen: &str, workers: usize, extra_scheduler_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("scheduler.log")).expect("log file");
        let mut scheduler = Command::new(exe())
            .args([
                "scheduler",
                "--listen",
                listen,
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args(extra_scheduler_args)
            .env("SHOAL_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("scheduler starts");
        let mut lines = BufReader::new(scheduler.stdout.take().expect("stdout")).lines();
        let address = lines
            .next()
            .and_then(Result::ok)
            .and_then(|l| {
                l.strip_prefix("SHOAL_SCHEDULER_ADDRESS=")
                    .map(str::to_string)
            })
            .expect("scheduler prints its address");
        let http = lines
            .next()
            .and_then(Result::ok)
            .and_then(|l| l.strip_prefix("SHOAL_SCHEDULER_HTTP=").map(str::to_string))
            .expect("scheduler prints its http address");
        let mut cluster = TestCluster {
            address,
            http,
            dir,
            scheduler,
            workers: Vec::new(),
        };
        for i in 0..workers {
            cluster.add_worker(&format!("w{i}"), TOKEN);
        }
        cluster
    }

    pub fn worker_command(&self, name: &str, token: &str) -> Command {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).expect("log");
        let mut cmd = Command::new(exe());
        cmd.args([
            "worker",
            "--scheduler",
            &self.address,
            "--name",
            name,
            "--cores",
            "1",
        ])
        .arg("--spill-dir")
        .arg(self.dir.path().join(format!("spill-{name}")))
        .env("SHOAL_TOKEN", token)
        .stderr(log);
        cmd
    }

    pub fn add_worker(&mut self, name: &str, token: &str) {
        let child = self
            .worker_command(name, token)
            .spawn()
            .expect("worker starts");
        self.workers.push((name.to_string(), child));
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    pub fn scheduler_log(&self) -> String {
        self.log("scheduler")
    }

    pub fn worker_pid(&self, name: &str) -> u32 {
        self.workers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.id())
            .expect("known worker")
    }

    /// Kills a worker process with SIGKILL.
    pub fn kill_worker(&mut self, name: &str) {
        let (_, child) = self
            .workers
            .iter_mut()
            .find(|(n, _)| n == name)
            .expect("known worker");
        child.kill().expect("kill");
        child.wait().expect("reap");
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.address, &token(), "integration-test")
            .await
            .expect("client connects")
    }

    /// Waits until `n` workers are registered.
    pub async fn wait_for_workers(&self, client: &Client, n: usize) {
        for _ in 0..400 {
            if client.cluster_info().await.expect("info").workers.len() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "{n} workers did not register; scheduler log:\n{}",
            self.scheduler_log()
        );
    }

    /// Plain HTTP GET on the scheduler's unauthenticated port.
    pub fn http_get(&self, path: &str) -> String {
        self.http_get_at(&self.http, path)
    }

    /// Plain HTTP GET on an address.
    pub fn http_get_at(&self, address: &str, path: &str) -> String {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(address).expect("http connect");
        write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").expect("write");
        let mut body = String::new();
        stream.read_to_string(&mut body).expect("read");
        body
    }

    /// One HTTP/1.0 request to the scheduler's HTTP port: (status code, body).
    pub fn http_request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(&self.http).expect("http connect");
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: test\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let code = response
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {response:?}"));
        let body = response
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, b)| b.to_string());
        (code, body)
    }

    pub fn spill_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("spill-{name}"))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.workers {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.scheduler.kill();
        let _ = self.scheduler.wait();
    }
}

pub fn builtin(op: v1::builtin_task::Op) -> Option<v1::TaskPayload> {
    Some(v1::TaskPayload {
        kind: Some(v1::task_payload::Kind::Builtin(v1::BuiltinTask {
            op: Some(op),
        })),
    })
}

pub fn task(key: &str, deps: Vec<u32>, op: v1::builtin_task::Op, wanted: bool) -> v1::TaskSpec {
    v1::TaskSpec {
        key: key.to_string(),
        deps,
        existing_deps: vec![],
        payload: builtin(op),
        priority: 0,
        wanted,
        max_retries: None,
        resources: Default::default(),
    }
}

pub fn sum(key: &str, add: i64, deps: Vec<u32>, wanted: bool) -> v1::TaskSpec {
    task(key, deps, v1::builtin_task::Op::Sum(add), wanted)
}

pub fn as_i64(bytes: &[u8]) -> i64 {
    i64::from_le_bytes(bytes.try_into().expect("8-byte result"))
}

/// Waits for events until every key finished; panics with the error of a failed one.
pub async fn wait_finished(
    client: &Client,
    events: &mut tonic::Streaming<v1::ClientEvents>,
    keys: &[&str],
) {
    let mut pending: std::collections::HashSet<String> =
        keys.iter().map(|k| k.to_string()).collect();
    while !pending.is_empty() {
        let batch = tokio::time::timeout(Duration::from_secs(60), events.message())
            .await
            .expect("events within 60s")
            .expect("event stream")
            .expect("stream open");
        if let Some(f) = batch.failed.first() {
            panic!("{} failed: {:?}", f.key, f.error);
        }
        for key in client.finished_keys(&batch) {
            pending.remove(&key);
        }
    }
}
