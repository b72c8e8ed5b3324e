//! Running the parts: `shoal scheduler`, `shoal worker`, and a whole local cluster (a
//! scheduler plus worker processes on this machine) for `shoal local` and `shoal bench`.

use std::process::Stdio;
use std::time::Duration;

use shoal_client::Client;
use shoal_proto::auth::Token;
use shoal_scheduler::SchedulerConfig;
use shoal_worker::WorkerConfig;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{LocalArgs, SchedulerArgs, WorkerArgs, token};

/// The line a scheduler process prints once it listens (read by `LocalCluster`).
const ADDRESS_LINE: &str = "SHOAL_SCHEDULER_ADDRESS=";

pub async fn run_scheduler(args: SchedulerArgs) -> Result<(), String> {
    let token = token::required(&args.token)?;
    let mut config = SchedulerConfig::new(&args.listen, &args.http_listen, token);
    config.cluster_name = args.cluster_name;
    config.heartbeat_timeout = Duration::from_secs(args.heartbeat_timeout.max(1));
    // Several heartbeats fit in the timeout, so an idle worker is never taken for a lost one.
    config.heartbeat_interval = config.heartbeat_interval.min(config.heartbeat_timeout / 4);
    config.max_chunk_bytes = args.max_chunk_bytes;
    if !(0.0..=300.0).contains(&args.loss_report_wait) {
        return Err(format!(
            "--loss-report-wait (SHOAL_LOSS_REPORT_WAIT) is {}; expected seconds between 0 and 300",
            args.loss_report_wait
        ));
    }
    config.loss_report_wait = Duration::from_secs_f64(args.loss_report_wait);
    let mut handle = shoal_scheduler::start(config)
        .await
        .map_err(|e| e.to_string())?;
    println!("{ADDRESS_LINE}{}", handle.address);
    println!("SHOAL_SCHEDULER_HTTP={}", handle.http_address);
    tokio::select! {
        r = handle.wait() => r,
        _ = stop_signal() => {
            handle.stop().await;
            Ok(())
        }
    }
}

/// Resolves on SIGINT or SIGTERM (how Kubernetes and `LocalCluster::stop` stop processes).
pub async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Asks a child to stop with SIGTERM (by PID), waits up to 5s, then kills it.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

pub async fn run_worker(args: WorkerArgs) -> Result<(), String> {
    let token = token::required(&args.token)?;
    let name = args
        .name
        .unwrap_or_else(|| format!("worker-{}", std::process::id()));
    let cores = args
        .cores
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let spill_dir = args
        .spill_dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("shoal-spill-{name}")));
    let memory = shoal_worker::Thresholds {
        target: args.memory_target,
        spill: args.memory_spill,
        pause: args.memory_pause,
        terminate: args.memory_terminate,
    };
    memory.validate().map_err(|e| {
        format!("{e} (--memory-target/--memory-spill/--memory-pause/--memory-terminate or SHOAL_MEMORY_*)")
    })?;
    let python = (args.python != "none").then_some(args.python);
    let shared_dir = match args.shared_memory_dir.as_str() {
        "none" | "" => None,
        _ if python.is_none() => None,
        // Without a usable tmpfs (no /dev/shm, as on macOS) values travel through the
        // executors' pipes: slower, never wrong.
        base => shoal_worker::prepare_shared_dir(std::path::Path::new(base), &name)
            .inspect_err(|e| tracing::warn!("{e}; values travel through pipes instead"))
            .ok(),
    };
    let config = WorkerConfig {
        scheduler: args.scheduler,
        token,
        name,
        cores,
        group: args.group,
        resources: args.resources.unwrap_or_default().0,
        memory_limit: args
            .memory_limit
            .unwrap_or_else(shoal_worker::default_limit),
        memory,
        spill_dir: spill_dir.clone(),
        shared_dir: shared_dir.clone(),
        listen: args.listen,
        advertise_host: args.advertise_host,
        metrics_listen: args.metrics_listen,
        python,
    };
    let result = tokio::select! {
        r = shoal_worker::run(config) => r.map_err(|e| e.to_string()),
        _ = stop_signal() => {
            tracing::info!("worker stopping on a signal");
            Ok(())
        }
    };
    let _ = std::fs::remove_dir_all(spill_dir);
    if let Some(dir) = shared_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

/// A scheduler and worker processes on this machine, stopped (by PID) when dropped.
pub struct LocalCluster {
    pub address: String,
    /// Metrics and health address of an in-process scheduler.
    pub http_address: Option<String>,
    pub token: Token,
    pub scheduler_pid: Option<u32>,
    scheduler: Option<Child>,
    in_process: Option<shoal_scheduler::SchedulerHandle>,
    workers: Vec<Child>,
}

impl LocalCluster {
    /// Starts the scheduler (as a child process, or inside this process) and `workers`
    /// worker processes, and waits until they all registered.
    pub async fn start(
        workers: u32,
        cores: u32,
        token: Token,
        scheduler_in_process: Option<(String, String)>,
    ) -> Result<Self, String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find the shoal binary: {e}"))?;
        let mut cluster = LocalCluster {
            address: String::new(),
            http_address: None,
            token: token.clone(),
            scheduler_pid: None,
            scheduler: None,
            in_process: None,
            workers: Vec::new(),
        };
        if let Some((listen, http)) = scheduler_in_process {
            let handle =
                shoal_scheduler::start(SchedulerConfig::new(&listen, &http, token.clone()))
                    .await
                    .map_err(|e| e.to_string())?;
            cluster.address = handle.address.to_string();
            cluster.http_address = Some(handle.http_address.to_string());
            cluster.in_process = Some(handle);
        } else {
            let mut child = Command::new(&exe)
                .args([
                    "scheduler",
                    "--listen",
                    "127.0.0.1:0",
                    "--http-listen",
                    "127.0.0.1:0",
                ])
                .env("SHOAL_TOKEN", token.secret())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start the scheduler process: {e}"))?;
            cluster.scheduler_pid = child.id();
            let stdout = child
                .stdout
                .take()
                .ok_or("scheduler stdout is not captured")?;
            cluster.scheduler = Some(child);
            let mut lines = BufReader::new(stdout).lines();
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .map_err(|_| "the scheduler did not start within 30s".to_string())?
                .map_err(|e| format!("reading the scheduler's output: {e}"))?
                .ok_or("the scheduler exited before listening (see its log above)")?;
            cluster.address = line
                .strip_prefix(ADDRESS_LINE)
                .ok_or_else(|| format!("unexpected scheduler output: {line}"))?
                .to_string();
            if let Ok(Ok(Some(line))) =
                tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await
            {
                cluster.http_address = line
                    .strip_prefix("SHOAL_SCHEDULER_HTTP=")
                    .map(str::to_string);
            }
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        }
        // The machine's memory is shared by the workers, as Dask's local cluster shares it:
        // each would otherwise take all of it as its limit, and none would spill or pause
        // before the machine ran out. SHOAL_MEMORY_LIMIT, when set, applies to each.
        let share = (std::env::var_os("SHOAL_MEMORY_LIMIT").is_none())
            .then(|| (shoal_worker::default_limit() / u64::from(workers.max(1))).to_string());
        for i in 0..workers {
            let mut command = Command::new(&exe);
            command.args([
                "worker",
                "--scheduler",
                &cluster.address,
                "--name",
                &format!("local-worker-{i}"),
                "--cores",
                &cores.to_string(),
            ]);
            if let Some(share) = &share {
                command.args(["--memory-limit", share]);
            }
            let child = command
                .env("SHOAL_TOKEN", token.secret())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start worker {i}: {e}"))?;
            cluster.workers.push(child);
        }
        cluster.wait_for_workers(workers as usize).await?;
        Ok(cluster)
    }

    async fn wait_for_workers(&self, n: usize) -> Result<(), String> {
        let client = Client::connect(&self.address, &self.token, "shoal-local")
            .await
            .map_err(|e| e.to_string())?;
        for _ in 0..600 {
            let info = client.cluster_info().await.map_err(|e| e.to_string())?;
            if info.workers.len() >= n {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("{n} workers did not register within 30s"))
    }

    /// Stops every process this cluster started, by PID, and waits for them.
    pub async fn stop(mut self) {
        // The scheduler first: it tells the workers to shut down, so their ends are not
        // reported as losses.
        if let Some(handle) = self.in_process.take() {
            handle.stop().await;
        }
        for child in self.scheduler.iter_mut().chain(self.workers.iter_mut()) {
            terminate(child).await;
        }
    }
}

pub async fn run_local(args: LocalArgs) -> Result<(), String> {
    let token = match token::from_args(&args.token)? {
        Some(t) => t,
        None => token::generate(),
    };
    let available = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let cores = args
        .cores
        .unwrap_or_else(|| (available / args.workers.max(1)).max(1));
    let cluster = LocalCluster::start(
        args.workers,
        cores,
        token.clone(),
        Some((args.listen, args.http_listen)),
    )
    .await?;
    println!(
        "Shoal local cluster: {} workers x {cores} cores",
        args.workers
    );
    println!("  scheduler: {}", cluster.address);
    if let Some(http) = &cluster.http_address {
        println!("  metrics:   http://{http}/metrics");
        println!("  dashboard: http://{http}/status?token={}", token.secret());
    }
    println!("  token:     {}", token.secret());
    println!(
        "Connect with SHOAL_TOKEN={} and the address above. Ctrl-C stops the cluster.",
        token.secret()
    );
    stop_signal().await;
    cluster.stop().await;
    Ok(())
}
