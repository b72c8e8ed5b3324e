//! The Shoal scheduler: tonic services (`Scheduler` for clients, `WorkerSession` for
//! workers, `Control` for the operator) around the pure core, which one task owns
//! (`actor.rs`); services only decode requests and send it events. Metrics and health are
//! served over plain HTTP on a separate port, the only unauthenticated endpoints.
//!
//! Not here: scheduling decisions (shoal-core), running tasks (shoal-worker).

mod actor;
mod api;
mod client_service;
mod comm;
mod config;
mod control_service;
mod dashboard;
mod gather;
mod http;
mod metrics;
mod worker_service;

pub use config::SchedulerConfig;

use std::net::SocketAddr;

use shoal_proto::auth::CheckToken;
use shoal_proto::incoming;
use shoal_proto::v1::control_server::ControlServer;
use shoal_proto::v1::scheduler_server::SchedulerServer;
use shoal_proto::v1::worker_session_server::WorkerSessionServer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::service::interceptor::InterceptedService;

/// Largest gRPC message the scheduler decodes (graph chunks are checked against a smaller
/// limit with a clear error).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// A running scheduler: its addresses, and a way to stop it.
pub struct SchedulerHandle {
    pub address: SocketAddr,
    pub http_address: SocketAddr,
    actor: actor::Actor,
    shutdown: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl SchedulerHandle {
    /// Tells the workers to shut down, stops serving and waits for the server to end.
    pub async fn stop(mut self) {
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            self.actor.ask(|reply| actor::Event::Stop { reply }),
        )
        .await;
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Open client streams would hold a graceful shutdown forever: give them a moment.
        let graceful = tokio::time::timeout(std::time::Duration::from_secs(2), &mut self.server);
        if graceful.await.is_err() {
            self.server.abort();
        }
    }

    /// Waits until the server ends on its own (an error) or forever.
    pub async fn wait(&mut self) -> Result<(), String> {
        match (&mut self.server).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Binds the gRPC and HTTP ports and starts serving.
pub async fn start(config: SchedulerConfig) -> Result<SchedulerHandle, StartError> {
    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
    let address = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen.clone(),
        source,
    })?;
    let http_listener = TcpListener::bind(&config.http_listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.http_listen.clone(),
            source,
        })?;
    let http_address = http_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.http_listen.clone(),
            source,
        })?;

    let metrics = metrics::Metrics::new();
    let actor = actor::spawn(config.clone(), metrics.clone());
    http::spawn(http_listener, metrics, actor.clone(), config.token.clone());

    let check = CheckToken {
        expected: config.token.clone(),
    };
    let scheduler = SchedulerServer::new(client_service::ClientService::new(
        actor.clone(),
        config.token.clone(),
        config.max_chunk_bytes,
    ))
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let workers = WorkerSessionServer::new(worker_service::WorkerService::new(
        actor.clone(),
        config.clone(),
    ))
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let control = ControlServer::new(control_service::ControlService::new(actor.clone()));
    let (tx, rx) = oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(InterceptedService::new(scheduler, check.clone()))
        .add_service(InterceptedService::new(workers, check.clone()))
        .add_service(InterceptedService::new(control, check))
        .serve_with_incoming_shutdown(incoming(listener), async {
            let _ = rx.await;
        });
    let server = tokio::spawn(server);
    tracing::info!(%address, %http_address, cluster = %config.cluster_name, "scheduler listening");
    Ok(SchedulerHandle {
        address,
        http_address,
        actor,
        shutdown: Some(tx),
        server,
    })
}
