//! The `WorkerSession` gRPC service: registers a worker (version check first), relays its
//! messages to the actor, and declares it lost when its stream breaks or goes silent.

use std::time::Duration;

use shoal_proto::v1;
use shoal_proto::v1::worker_message::Msg as WorkerMsg;
use shoal_proto::v1::worker_session_server::WorkerSession;
use shoal_proto::version::{Peer, check_peer_version};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::actor::{Actor, Event};
use crate::config::SchedulerConfig;

pub struct WorkerService {
    actor: Actor,
    config: SchedulerConfig,
}

impl WorkerService {
    pub fn new(actor: Actor, config: SchedulerConfig) -> Self {
        WorkerService { actor, config }
    }
}

#[tonic::async_trait]
impl WorkerSession for WorkerService {
    type SessionStream = UnboundedReceiverStream<Result<v1::SchedulerMessage, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<v1::WorkerMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(30), inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Register message within 30s"))??;
        let Some(v1::WorkerMessage {
            msg: Some(WorkerMsg::Register(register)),
        }) = first
        else {
            return Err(Status::invalid_argument(
                "the first message of a worker session must be Register",
            ));
        };
        if let Err(e) = check_peer_version(Peer::Worker, register.version.as_ref()) {
            tracing::warn!(worker = register.name, error = %e, "worker refused");
            return Err(Status::failed_precondition(e.to_string()));
        }
        let name = register.name.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = self
            .actor
            .request(|reply| Event::WorkerRegistered {
                register,
                sender: tx,
                reply,
            })
            .await?
            .map_err(Status::already_exists)?;
        let actor = self.actor.clone();
        let timeout = self.config.heartbeat_timeout;
        tokio::spawn(async move {
            let cause = loop {
                match tokio::time::timeout(timeout, inbound.message()).await {
                    Ok(Ok(Some(v1::WorkerMessage { msg: Some(msg) }))) => {
                        actor.send(Event::WorkerMessage { worker, msg });
                    }
                    Ok(Ok(Some(_))) => {}
                    Ok(Ok(None)) => break "it closed its session".to_string(),
                    Ok(Err(status)) => {
                        break format!(
                            "its connection broke ({}); the process died or the network failed",
                            status.message()
                        );
                    }
                    Err(_) => {
                        break format!(
                            "it sent nothing for {}s (heartbeats stopped: hung, paused or partitioned)",
                            timeout.as_secs()
                        );
                    }
                }
            };
            tracing::debug!(worker = name, cause, "worker session ended");
            actor.send(Event::WorkerGone { worker, cause });
        });
        Ok(Response::new(UnboundedReceiverStream::new(rx)))
    }
}
