//! The `Scheduler` gRPC service for clients: handshake, graph submission in chunks, events,
//! gather (proxied from the workers), release, cancel, cluster info. Requests are decoded
//! and checked here; the core sees only domain types.

use prost::Message;
use shoal_client::data::DataClients;
use shoal_core::{ClientId, GraphError, KeyList, NewTask, Resources};
use shoal_proto::auth::Token;
use shoal_proto::convert::payload_from_wire;
use shoal_proto::v1;
use shoal_proto::v1::scheduler_server::Scheduler;
use shoal_proto::version::{Peer, check_peer_version};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tonic::{Request, Response, Status, Streaming};

use crate::actor::{Actor, Event};
use crate::gather;

pub struct ClientService {
    actor: Actor,
    data: DataClients,
    max_chunk_bytes: usize,
}

impl ClientService {
    pub fn new(actor: Actor, token: Token, max_chunk_bytes: usize) -> Self {
        ClientService {
            actor,
            data: DataClients::new(token),
            max_chunk_bytes,
        }
    }
}

impl ClientService {
    /// Release and Cancel: the session no longer wants the keys (cancel: and says so).
    fn release_keys(
        &self,
        params: v1::KeysParams,
        cancel: bool,
    ) -> Result<Response<v1::Empty>, Status> {
        self.actor.send(Event::Release {
            client: session(params.session_id)?,
            keys: params.keys,
            cancel,
        });
        Ok(Response::new(v1::Empty {}))
    }
}

fn session(id: u64) -> Result<ClientId, Status> {
    u32::try_from(id).map(ClientId).map_err(|_| {
        Status::invalid_argument(format!("session id {id} was not given by Handshake"))
    })
}

/// Turns one wire task into a staged task; `None` when its payload is empty.
fn stage(spec: v1::TaskSpec) -> Result<NewTask, String> {
    let v1::TaskSpec {
        key,
        deps,
        existing_deps,
        payload,
        priority,
        wanted,
        max_retries,
        resources,
    } = spec;
    let Some(payload) = payload.and_then(payload_from_wire) else {
        return Err(key);
    };
    Ok(NewTask {
        key: key.into_boxed_str(),
        deps: deps.into_boxed_slice(),
        existing_deps: (!existing_deps.is_empty()).then(|| {
            Box::new(
                existing_deps
                    .into_iter()
                    .map(String::into_boxed_str)
                    .collect(),
            )
        }),
        payload,
        priority: priority.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
        wanted,
        max_retries: max_retries.map(|n| n.min(u32::from(u8::MAX)) as u8),
        resources: (!resources.is_empty()).then(|| {
            Box::new(Resources::new(
                resources.into_iter().map(|r| (r.name, r.amount)),
            ))
        }),
    })
}

#[tonic::async_trait]
impl Scheduler for ClientService {
    async fn handshake(
        &self,
        request: Request<v1::HandshakeParams>,
    ) -> Result<Response<v1::HandshakeResult>, Status> {
        let params = request.into_inner();
        check_peer_version(Peer::Client, params.version.as_ref())
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let name = params.client_name;
        let client = self
            .actor
            .request(|reply| Event::ClientConnected { name, reply })
            .await?;
        let status = self.actor.request(|reply| Event::Status { reply }).await?;
        Ok(Response::new(v1::HandshakeResult {
            version: Some(shoal_proto::version_info()),
            session_id: u64::from(client.0),
            cluster_name: status.cluster_name,
            workers: status.workers.len() as u32,
        }))
    }

    async fn submit_graph(
        &self,
        request: Request<Streaming<v1::GraphChunk>>,
    ) -> Result<Response<v1::SubmitGraphResult>, Status> {
        let mut stream = request.into_inner();
        let mut tasks: Vec<NewTask> = Vec::new();
        let mut client = None;
        let mut empty: Vec<String> = Vec::new();
        let mut blobs: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut index = 0usize;
        while let Some(chunk) = stream.message().await? {
            let size = chunk.encoded_len();
            if size > self.max_chunk_bytes {
                let first = chunk.tasks.first().map(|t| t.key.as_str()).unwrap_or("");
                let last = chunk.tasks.last().map(|t| t.key.as_str()).unwrap_or("");
                let error = GraphError::ChunkTooLarge {
                    size,
                    limit: self.max_chunk_bytes,
                };
                return Err(Status::invalid_argument(format!(
                    "{error} (chunk {index}, keys {first:?} to {last:?})"
                )));
            }
            index += 1;
            if client.is_none() {
                client = Some(session(chunk.session_id)?);
            }
            blobs.extend(chunk.blobs.into_iter().map(|b| (b.id, b.data)));
            tasks.reserve(chunk.tasks.len());
            for spec in chunk.tasks {
                match stage(spec) {
                    Ok(task) => tasks.push(task),
                    Err(key) => empty.push(key),
                }
            }
        }
        if !empty.is_empty() {
            let keys = KeyList::collect(empty.iter().map(String::as_str));
            return Err(Status::invalid_argument(
                GraphError::EmptyPayload { keys }.to_string(),
            ));
        }
        let client =
            client.ok_or_else(|| Status::invalid_argument(GraphError::Empty.to_string()))?;
        let result = self
            .actor
            .request(|reply| Event::Graph {
                client,
                tasks,
                blobs,
                reply,
            })
            .await?;
        match result {
            Ok(summary) => Ok(Response::new(v1::SubmitGraphResult {
                graph_id: summary.graph_id,
                tasks: summary.new_tasks + summary.reused,
                first_serial: summary.first_serial,
            })),
            Err(e) => Err(Status::invalid_argument(e.to_string())),
        }
    }

    type SubscribeStream = UnboundedReceiverStream<Result<v1::ClientEvents, Status>>;

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeParams>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let client = session(request.into_inner().session_id)?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.actor.send(Event::ClientSubscribed {
            client,
            sender: tx.clone(),
        });
        let actor = self.actor.clone();
        tokio::spawn(async move {
            tx.closed().await;
            actor.send(Event::ClientGone { client });
        });
        Ok(Response::new(UnboundedReceiverStream::new(rx)))
    }

    type GatherStream = ReceiverStream<Result<v1::GatherChunk, Status>>;

    async fn gather(
        &self,
        request: Request<v1::GatherParams>,
    ) -> Result<Response<Self::GatherStream>, Status> {
        let params = request.into_inner();
        let stream =
            gather::gather(&self.actor, &self.data, params.keys, params.local_files).await?;
        Ok(Response::new(stream))
    }

    async fn release(
        &self,
        request: Request<v1::KeysParams>,
    ) -> Result<Response<v1::Empty>, Status> {
        self.release_keys(request.into_inner(), false)
    }

    async fn cancel(
        &self,
        request: Request<v1::KeysParams>,
    ) -> Result<Response<v1::Empty>, Status> {
        self.release_keys(request.into_inner(), true)
    }

    async fn get_cluster_info(
        &self,
        _request: Request<v1::Empty>,
    ) -> Result<Response<v1::ClusterStatus>, Status> {
        self.actor
            .request(|reply| Event::Status { reply })
            .await
            .map(Response::new)
    }

    async fn get_task_stream(
        &self,
        request: Request<v1::TaskStreamParams>,
    ) -> Result<Response<v1::TaskStream>, Status> {
        let since_unix_us = request.into_inner().since_unix_us;
        self.actor
            .request(|reply| Event::TaskStream {
                since_unix_us,
                reply,
            })
            .await
            .map(Response::new)
    }

    async fn get_performance_report(
        &self,
        request: Request<v1::TaskStreamParams>,
    ) -> Result<Response<v1::PerformanceReport>, Status> {
        let params = request.into_inner();
        let since_unix_us = params.since_unix_us;
        let stream = self
            .actor
            .request(|reply| Event::TaskStream {
                since_unix_us,
                reply,
            })
            .await?;
        Ok(Response::new(v1::PerformanceReport {
            html: crate::dashboard::report::render(&stream, &params.title),
        }))
    }
}
