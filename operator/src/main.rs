//! `shoal-operator`: `run` the operator (default) or print the CRDs (`crds`).
//! Flags and environment at the edge; everything else lives in the library.

use clap::{Parser, Subcommand, ValueEnum};
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use shoal_operator::http::{HttpState, router};
use shoal_operator::leader::{self, LeaseConfig};
use shoal_operator::reconcile::validate::Defaults;
use shoal_operator::reconcile::{Context, network};
use shoal_operator::{VERSION, controller, crd, job};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "shoal-operator", version = VERSION, about = "Runs Shoal clusters on Kubernetes")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the operator (the default).
    Run(RunArgs),
    /// Prints the CustomResourceDefinitions as YAML.
    Crds,
}

#[derive(clap::Parser)]
struct RunArgs {
    /// Address of the metrics and health endpoints.
    #[arg(
        long,
        env = "SHOAL_OPERATOR_METRICS_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    metrics_listen: String,
    /// Namespace to watch; all namespaces when empty.
    #[arg(long, env = "SHOAL_OPERATOR_WATCH_NAMESPACE", default_value = "")]
    watch_namespace: String,
    /// Elect a leader with a Lease so only one replica reconciles.
    #[arg(long, env = "SHOAL_OPERATOR_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Namespace of the leader Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "shoal-operator")]
    lease_name: String,
    /// This replica's identity in the Lease and in Events (default: the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Image repository (no tag) of clusters whose spec names none; the tag is the version.
    #[arg(long, env = "SHOAL_OPERATOR_DEFAULT_IMAGE", default_value = shoal_operator::names::DEFAULT_IMAGE)]
    default_image: String,
    /// Give every cluster a NetworkPolicy: only its workers, pods labelled
    /// `client.shoal.dev/<cluster>=true` and this operator reach its scheduler's gRPC port.
    #[arg(long, env = "SHOAL_OPERATOR_NETWORK_POLICY", default_value_t = true, action = clap::ArgAction::Set)]
    network_policy: bool,
    /// Labels of the operator's own pods (`k=v,k=v`), which the NetworkPolicies admit;
    /// empty: every pod of the operator's namespace.
    #[arg(long, env = "SHOAL_OPERATOR_POD_LABELS", default_value = "")]
    operator_pod_labels: String,
    /// The operator's own namespace, which the NetworkPolicies admit (default: the pod's).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    operator_namespace: String,
    /// Log format.
    #[arg(
        long,
        env = "SHOAL_OPERATOR_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Crds) => {
            return match crd::crds_yaml() {
                Ok(yaml) => {
                    print!("{yaml}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("shoal-operator: rendering the CRDs failed: {error}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::Run(args)) => args,
        None => RunArgs::parse_from(["shoal-operator"]),
    };
    init_logs(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("shoal-operator: starting the async runtime failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
}

/// Waits for a controller to finish its in-flight reconciles, unless it already stopped.
async fn finish<F: futures::future::FusedFuture<Output = ()>>(running: std::pin::Pin<&mut F>) {
    if !running.is_terminated() {
        running.await;
    }
}

async fn run(args: RunArgs) -> Result<(), String> {
    let network = if args.network_policy {
        let labels = network::parse_labels(&args.operator_pod_labels)
            .map_err(|e| format!("--operator-pod-labels: {e}"))?;
        network::Settings::Enabled(network::OperatorPeer {
            namespace: args.operator_namespace.clone(),
            labels,
        })
    } else {
        network::Settings::Disabled
    };
    let state = HttpState::default();
    let listener = tokio::net::TcpListener::bind(&args.metrics_listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {} for metrics and health: {e}; pick another --metrics-listen",
                args.metrics_listen
            )
        })?;
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router(state.clone())).with_graceful_shutdown(async {
        let _ = http_stopped.await;
    });
    let http = tokio::spawn(async move { server.await });

    let client = Client::try_default().await.map_err(|e| {
        format!("cannot configure a Kubernetes client (in-cluster or KUBECONFIG): {e}")
    })?;
    let server_version = client
        .apiserver_version()
        .await
        .map_err(|e| format!("cannot reach the Kubernetes API server: {e}"))?;
    state.ready.store(true, Ordering::Relaxed);
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("shoal-operator-{}", std::process::id()));
    tracing::info!(version = VERSION, kubernetes = %server_version.git_version, identity = %identity, "shoal-operator starting");

    let lease = LeaseConfig {
        namespace: args.lease_namespace.clone(),
        name: args.lease_name.clone(),
        identity: identity.clone(),
        duration: Duration::from_secs(15),
        renew: Duration::from_secs(2),
    };
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown_signal()));
    if args.leader_election {
        tokio::select! {
            () = leader::acquire(&client, &lease) => {},
            () = shutdown.clone() => {
                let _ = stop_http.send(());
                return Ok(());
            }
        }
    }

    let reporter = Reporter {
        controller: "shoal-operator".into(),
        instance: Some(identity),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter.clone()),
        reporter,
        metrics: state.metrics.clone(),
        defaults: Defaults {
            version: VERSION.to_owned(),
            image: args.default_image.clone(),
        },
        reported: std::sync::Mutex::default(),
        network,
    });
    let namespace = (!args.watch_namespace.is_empty()).then_some(args.watch_namespace.as_str());
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<leader::LeaderError>();
    if args.leader_election {
        let (client, lease) = (client.clone(), lease.clone());
        tokio::spawn(async move {
            let _ = lost_tx.send(leader::hold(&client, &lease).await);
        });
    }
    let (stop_controller, controller_stop) = tokio::sync::oneshot::channel::<()>();
    let (stop_jobs, jobs_stop) = tokio::sync::oneshot::channel::<()>();
    let (store, controller) = controller::controller(ctx.clone(), namespace, async {
        let _ = controller_stop.await;
    });
    let _ = state.clusters.set(store);
    let jobs = job::controller::controller(ctx, namespace, async {
        let _ = jobs_stop.await;
    });
    // Fused: after one stops, the shutdown below waits only for the other.
    let controller = futures::FutureExt::fuse(controller);
    let jobs = futures::FutureExt::fuse(jobs);
    tokio::pin!(controller);
    tokio::pin!(jobs);

    let outcome = tokio::select! {
        () = &mut controller => Err("the controller stopped unexpectedly".to_owned()),
        () = &mut jobs => Err("the ShoalJob controller stopped unexpectedly".to_owned()),
        () = shutdown.clone() => Ok(()),
        Ok(lost) = lost_rx => Err(format!("{lost}; exiting so a fresh start can stand by")),
    };
    tracing::info!("shutting down: finishing in-flight reconciles");
    let _ = stop_controller.send(());
    let _ = stop_jobs.send(());
    let _ = tokio::time::timeout(
        Duration::from_secs(20),
        futures::future::join(finish(controller), finish(jobs)),
    )
    .await;
    if args.leader_election {
        leader::release(&client, &lease).await;
    }
    let _ = stop_http.send(());
    let _ = http.await;
    outcome
}
