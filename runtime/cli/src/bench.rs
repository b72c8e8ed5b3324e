//! `shoal bench`: starts a local cluster (scheduler and workers as processes), submits a
//! builtin-task graph through the real client path, waits for and checks the results, and
//! prints figures (with `--dashboard-viewers`, also what watching the dashboard cost). The
//! last line is machine-readable:
//! `tasks=<n> seconds=<s> tasks_per_s=<x> scheduler_peak_rss_bytes=<r>`.

use std::collections::HashSet;
use std::time::Instant;

use clap::Args;
use shoal_client::Client;

use crate::cluster::LocalCluster;
use crate::graphs::{GraphKind, build};
use crate::token;
use crate::viewers;

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// Cores per worker (defaults to the number of CPUs).
    #[arg(long)]
    cores: Option<u32>,
    #[arg(long, value_enum, default_value_t = GraphKind::Tree)]
    graph: GraphKind,
    #[arg(long, default_value_t = 100_000)]
    tasks: u64,
    /// Dashboard viewers holding the live stream open while the graph runs; their update
    /// sizes and the scheduler's time on the dashboard are printed.
    #[arg(long, default_value_t = 0)]
    dashboard_viewers: usize,
}

/// Reads a `/proc/<pid>/status` field in bytes (VmRSS, VmHWM).
fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

pub async fn run(args: BenchArgs) -> Result<(), String> {
    let cores = args
        .cores
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let cluster = LocalCluster::start(args.workers, cores, token::generate(), None).await?;
    let result = measure(&cluster, &args, cores).await;
    cluster.stop().await;
    result
}

async fn measure(cluster: &LocalCluster, args: &BenchArgs, cores: u32) -> Result<(), String> {
    let pid = cluster
        .scheduler_pid
        .ok_or("the scheduler process has no pid")?;
    let client = Client::connect(&cluster.address, &cluster.token, "shoal-bench")
        .await
        .map_err(|e| e.to_string())?;
    let built = Instant::now();
    let graph = build(args.graph, args.tasks, "t");
    let n = graph.tasks.len();
    eprintln!(
        "graph: {:?}, {n} tasks, built in {:.2}s; {} workers x {} cores",
        args.graph,
        built.elapsed().as_secs_f64(),
        args.workers,
        cores
    );
    let idle_rss = proc_status_bytes(pid, "VmRSS:");
    let http = cluster.http_address.clone().unwrap_or_default();
    if !http.is_empty() {
        eprintln!(
            "dashboard: http://{http}/status?token={}",
            cluster.token.secret()
        );
    }
    let watchers: Vec<_> = (0..args.dashboard_viewers)
        .map(|_| viewers::spawn(http.clone(), cluster.token.secret().to_owned()))
        .collect();
    let (cpu_before, dash_before) = (
        viewers::cpu_seconds(pid),
        viewers::dashboard_seconds(&http).await,
    );
    let mut events = client.subscribe().await.map_err(|e| e.to_string())?;
    let wanted: Vec<String> = graph.expected.iter().map(|(k, _)| k.clone()).collect();
    let start = Instant::now();
    client
        .submit(graph.tasks)
        .await
        .map_err(|e| e.to_string())?;
    let submit_s = start.elapsed().as_secs_f64();
    let mut pending: HashSet<&str> = wanted.iter().map(String::as_str).collect();
    while !pending.is_empty() {
        let batch = events
            .message()
            .await
            .map_err(|e| format!("event stream broke: {e}"))?
            .ok_or("the scheduler closed the event stream")?;
        if let Some(failed) = batch.failed.first() {
            return Err(format!(
                "task {:?} failed: {:?}",
                failed.key,
                failed.error.as_ref().map(|e| &e.message)
            ));
        }
        for key in client.finished_keys(&batch) {
            pending.remove(key.as_str());
        }
    }
    let computed_s = start.elapsed().as_secs_f64();
    let values = client
        .gather(wanted.clone())
        .await
        .map_err(|e| e.to_string())?;
    let seconds = start.elapsed().as_secs_f64();
    for (key, want) in &graph.expected {
        let got = values
            .get(key)
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(i64::from_le_bytes);
        if got != Some(*want) {
            return Err(format!(
                "wrong result for {key:?}: expected {want}, got {got:?}"
            ));
        }
    }
    let (cpu_s, dash_s) = (
        viewers::cpu_seconds(pid) - cpu_before,
        viewers::dashboard_seconds(&http).await - dash_before,
    );
    let mut sizes: Vec<usize> = Vec::new();
    for (task, got) in watchers {
        task.abort();
        sizes.extend(got.lock().map(|s| s.clone()).unwrap_or_default());
    }
    if args.dashboard_viewers > 0 {
        sizes.sort_unstable();
        let median = sizes.get(sizes.len() / 2).copied().unwrap_or(0);
        let max = sizes.last().copied().unwrap_or(0);
        eprintln!(
            "dashboard: {} viewers got {} updates (median {median} B, largest {max} B, the first being a snapshot); \
             the scheduler spent {dash_s:.3}s of {cpu_s:.2}s CPU on the dashboard ({:.2}%)",
            args.dashboard_viewers,
            sizes.len(),
            100.0 * dash_s / cpu_s.max(1e-9)
        );
        println!(
            "dashboard_viewers={} updates={} update_bytes_median={median} update_bytes_max={max} dashboard_cpu_s={dash_s:.3} scheduler_cpu_s={cpu_s:.2}",
            args.dashboard_viewers,
            sizes.len()
        );
    }
    let peak = proc_status_bytes(pid, "VmHWM:");
    let per_task = peak.saturating_sub(idle_rss) as f64 / n as f64;
    eprintln!(
        "submitted in {submit_s:.2}s, computed in {computed_s:.2}s, gathered {} results in {:.2}s",
        values.len(),
        seconds - computed_s
    );
    eprintln!(
        "result correct ({} wanted keys checked); scheduler rss idle {} MiB, peak {} MiB, {per_task:.0} bytes/task above idle",
        graph.expected.len(),
        idle_rss >> 20,
        peak >> 20
    );
    client.release(wanted).await.map_err(|e| e.to_string())?;
    println!(
        "tasks={n} seconds={seconds:.3} tasks_per_s={:.0} scheduler_peak_rss_bytes={peak}",
        n as f64 / seconds
    );
    Ok(())
}
