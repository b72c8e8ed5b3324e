//! The `shoal` binary: `scheduler`, `worker`, `local` (a whole cluster on this machine),
//! `bench` (a builtin-task benchmark through the real gRPC path) and `version`.

mod bench;
mod cluster;
mod flags;
mod graphs;
mod token;
mod viewers;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "shoal",
    version,
    about = "Elastic task-graph clusters: scheduler, workers, local cluster, benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a scheduler.
    Scheduler(SchedulerArgs),
    /// Runs a worker that joins a scheduler.
    Worker(WorkerArgs),
    /// Runs a scheduler and N workers on this machine and prints how to connect.
    Local(LocalArgs),
    /// Benchmarks the runtime with builtin tasks on a fresh local cluster.
    Bench(bench::BenchArgs),
    /// Prints the runtime and protocol versions.
    Version,
}

#[derive(Args, Clone)]
pub struct TokenArgs {
    /// The cluster's auth token.
    #[arg(long, env = "SHOAL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the cluster's auth token.
    #[arg(long, env = "SHOAL_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

#[derive(Args)]
struct SchedulerArgs {
    /// gRPC listen address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8786")]
    listen: String,
    /// Metrics and health listen address.
    #[arg(long, default_value = "127.0.0.1:8787")]
    http_listen: String,
    #[arg(long, default_value = "local")]
    cluster_name: String,
    /// Seconds without a message after which a worker is declared lost.
    #[arg(long, default_value_t = 30)]
    heartbeat_timeout: u64,
    /// Seconds a worker whose connection dropped is held (no new tasks) before its loss
    /// is settled, waiting for the operator to report why (an OOM kill), so its tasks'
    /// errors name the cause. 0 settles at once (no operator).
    #[arg(long, env = "SHOAL_LOSS_REPORT_WAIT", default_value_t = 0.0)]
    loss_report_wait: f64,
    /// Largest graph chunk accepted, in encoded bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    max_chunk_bytes: usize,
    #[command(flatten)]
    token: TokenArgs,
}

#[derive(Args)]
struct WorkerArgs {
    /// The scheduler's address.
    #[arg(long, env = "SHOAL_SCHEDULER", default_value = "127.0.0.1:8786")]
    scheduler: String,
    /// Unique worker name (defaults to host name and process id).
    #[arg(long, env = "SHOAL_WORKER_NAME")]
    name: Option<String>,
    /// Tasks run at once (defaults to the number of CPUs).
    #[arg(long)]
    cores: Option<u32>,
    /// The worker group it belongs to (autoscaling estimates per group).
    #[arg(long, env = "SHOAL_WORKER_GROUP", default_value = "default")]
    group: String,
    /// Abstract resources it offers, as name=amount pairs (e.g. highmem=1,gpu=2); tasks
    /// asking for resources run only on workers offering at least that much.
    #[arg(long, env = "SHOAL_WORKER_RESOURCES", value_parser = flags::resource_list)]
    resources: Option<flags::ResourceList>,
    /// Memory the worker's pod may use, in bytes or with a unit (512Mi, 2Gi); defaults
    /// to the container's cgroup limit, or physical memory without one.
    #[arg(long, env = "SHOAL_MEMORY_LIMIT", value_parser = flags::byte_size)]
    memory_limit: Option<u64>,
    /// Fraction of the memory limit past which stored results spill to disk as they are
    /// stored (0: never).
    #[arg(long, env = "SHOAL_MEMORY_TARGET", value_parser = flags::fraction, default_value_t = 0.6)]
    memory_target: f64,
    /// Fraction of the limit: when the memory measured passes it, stored results spill
    /// until it is back under the target (0: off).
    #[arg(long, env = "SHOAL_MEMORY_SPILL", value_parser = flags::fraction, default_value_t = 0.7)]
    memory_spill: f64,
    /// Fraction of the limit: above it the worker starts no new tasks and the scheduler
    /// places them elsewhere, until memory falls again (0: off).
    #[arg(long, env = "SHOAL_MEMORY_PAUSE", value_parser = flags::fraction, default_value_t = 0.8)]
    memory_pause: f64,
    /// Fraction of the limit: above it the running task holding the most memory is
    /// stopped and fails with MemoryLimit, before the kernel OOM-kills the worker (0: off).
    #[arg(long, env = "SHOAL_MEMORY_TERMINATE", value_parser = flags::fraction, default_value_t = 0.95)]
    memory_terminate: f64,
    /// Data-plane listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Host peers use to reach this worker's data plane.
    #[arg(long, env = "SHOAL_ADVERTISE_HOST")]
    advertise_host: Option<String>,
    /// Where results spill when memory runs short.
    #[arg(long)]
    spill_dir: Option<PathBuf>,
    /// A tmpfs under which the worker makes its shared-memory store (executors write
    /// results there and map their inputs read-only); "none" sends values through the
    /// executors' pipes instead.
    #[arg(long, env = "SHOAL_SHARED_MEMORY_DIR", default_value = "/dev/shm")]
    shared_memory_dir: String,
    /// Metrics and health listen address (unauthenticated), e.g. 0.0.0.0:8788.
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Python interpreter that runs Python tasks (`python -m shoal.executor`); "none"
    /// disables Python tasks.
    #[arg(long, env = "SHOAL_PYTHON", default_value = "python3")]
    python: String,
    #[command(flatten)]
    token: TokenArgs,
}

#[derive(Args)]
struct LocalArgs {
    /// Worker processes. One is the default: its executors (one per core) share its
    /// shared-memory store, so no value crosses between workers (see the README).
    #[arg(long, default_value_t = 1)]
    workers: u32,
    /// Cores per worker (default: the machine's cores, divided between the workers).
    #[arg(long)]
    cores: Option<u32>,
    #[arg(long, default_value = "127.0.0.1:8786")]
    listen: String,
    #[arg(long, default_value = "127.0.0.1:8787")]
    http_listen: String,
    #[command(flatten)]
    token: TokenArgs,
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Scheduler(args) => cluster::run_scheduler(args).await,
            Command::Worker(args) => cluster::run_worker(args).await,
            Command::Local(args) => cluster::run_local(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Version => {
                println!(
                    "shoal {} (protocol {})",
                    shoal_proto::RUNTIME_VERSION,
                    shoal_proto::PROTOCOL_VERSION
                );
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
