//! A Rust client of Shoal's services: the scheduler's client API (`Client`) and the
//! workers' data plane (`DataClients`). Used by `shoal bench`, the scheduler's gather
//! proxy, workers fetching inputs, and tests.
//!
//! Not here: the Python client (python/), graph building for users.

pub mod data;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prost::Message;
use shoal_proto::auth::{AttachToken, Token};
use shoal_proto::v1;
use shoal_proto::v1::scheduler_client::SchedulerClient;
use tonic::codegen::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// Keys per Gather call.
pub const GATHER_BATCH: usize = 65_536;

/// Bytes of encoded tasks per graph chunk sent.
pub const CHUNK_BYTES: usize = 2 * 1024 * 1024;
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the scheduler at {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("{call} refused by the scheduler ({code:?}): {message}")]
    Refused {
        call: &'static str,
        code: tonic::Code,
        message: String,
    },
    #[error("invalid scheduler address {address:?}: {reason}")]
    Address { address: String, reason: String },
}

impl ClientError {
    fn status(call: &'static str, s: tonic::Status) -> Self {
        ClientError::Refused {
            call,
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

type Inner = SchedulerClient<InterceptedService<Channel, AttachToken>>;

/// Keys of this session's submissions, by first serial: completion events name the
/// session's own tasks by serial.
type Submitted = Arc<Mutex<Vec<(u64, Arc<[String]>)>>>;

/// A connected client session.
#[derive(Clone)]
pub struct Client {
    inner: Inner,
    pub session_id: u64,
    pub handshake: v1::HandshakeResult,
    submitted: Submitted,
}

/// Opens a channel to `address` ("host:port" or "http://host:port").
pub async fn channel(address: &str) -> Result<Channel, ClientError> {
    let uri = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    let endpoint = Endpoint::from_shared(uri).map_err(|e| ClientError::Address {
        address: address.to_string(),
        reason: e.to_string(),
    })?;
    endpoint
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|source| ClientError::Connect {
            address: address.to_string(),
            source,
        })
}

impl Client {
    /// Connects and handshakes with this build's version.
    pub async fn connect(address: &str, token: &Token, name: &str) -> Result<Self, ClientError> {
        Self::connect_as(address, token, name, shoal_proto::version_info()).await
    }

    /// Connects claiming a given version (tests of the version check use it).
    pub async fn connect_as(
        address: &str,
        token: &Token,
        name: &str,
        version: v1::VersionInfo,
    ) -> Result<Self, ClientError> {
        let channel = channel(address).await?;
        let mut inner = SchedulerClient::with_interceptor(channel, AttachToken::new(token))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let handshake = inner
            .handshake(v1::HandshakeParams {
                version: Some(version),
                client_name: name.to_string(),
            })
            .await
            .map_err(|s| ClientError::status("handshake", s))?
            .into_inner();
        Ok(Client {
            inner,
            session_id: handshake.session_id,
            handshake,
            submitted: Submitted::default(),
        })
    }

    /// Streams a graph in chunks of about [`CHUNK_BYTES`].
    pub async fn submit(
        &self,
        tasks: Vec<v1::TaskSpec>,
    ) -> Result<v1::SubmitGraphResult, ClientError> {
        let session_id = self.session_id;
        let mut chunks = Vec::new();
        let mut current = Vec::new();
        let mut bytes = 0;
        for task in tasks {
            bytes += task.encoded_len() + 4;
            current.push(task);
            if bytes >= CHUNK_BYTES {
                chunks.push(std::mem::take(&mut current));
                bytes = 0;
            }
        }
        if !current.is_empty() {
            chunks.push(current);
        }
        self.submit_chunks(
            chunks
                .into_iter()
                .map(|tasks| v1::GraphChunk {
                    session_id,
                    tasks,
                    blobs: vec![],
                })
                .collect(),
        )
        .await
    }

    /// Streams prepared chunks as they are (tests of chunk limits use it).
    pub async fn submit_chunks(
        &self,
        chunks: Vec<v1::GraphChunk>,
    ) -> Result<v1::SubmitGraphResult, ClientError> {
        let keys: Arc<[String]> = chunks
            .iter()
            .flat_map(|c| c.tasks.iter().map(|t| t.key.clone()))
            .collect();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            for chunk in chunks {
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut inner = self.inner.clone();
        let result = inner
            .submit_graph(stream)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| ClientError::status("submit graph", s))?;
        if let Ok(mut submitted) = self.submitted.lock() {
            submitted.push((result.first_serial, keys));
        }
        Ok(result)
    }

    /// The keys an event batch reports finished (by key, or by serial for this session's
    /// own submissions).
    pub fn finished_keys(&self, events: &v1::ClientEvents) -> Vec<String> {
        let mut keys: Vec<String> = events.finished.iter().map(|f| f.key.clone()).collect();
        if events.finished_serials.is_empty() {
            return keys;
        }
        let Ok(submitted) = self.submitted.lock() else {
            return keys;
        };
        for &serial in &events.finished_serials {
            let i = submitted.partition_point(|(first, _)| *first <= serial);
            if i == 0 {
                continue;
            }
            let (first, names) = &submitted[i - 1];
            if let Some(key) = names.get((serial - first) as usize) {
                keys.push(key.clone());
            }
        }
        keys
    }

    /// Events for the keys this session wants.
    pub async fn subscribe(&self) -> Result<tonic::Streaming<v1::ClientEvents>, ClientError> {
        let mut inner = self.inner.clone();
        inner
            .subscribe(v1::SubscribeParams {
                session_id: self.session_id,
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| ClientError::status("subscribe", s))
    }

    /// Fetches results through the scheduler, [`GATHER_BATCH`] keys per call (the
    /// scheduler holds one call's keys at a time).
    pub async fn gather(&self, keys: Vec<String>) -> Result<HashMap<String, Vec<u8>>, ClientError> {
        let mut out: HashMap<String, Vec<u8>> = HashMap::with_capacity(keys.len());
        for batch in keys.chunks(GATHER_BATCH) {
            let mut inner = self.inner.clone();
            let mut stream = inner
                .gather(v1::GatherParams {
                    session_id: self.session_id,
                    keys: batch.to_vec(),
                    local_files: false,
                })
                .await
                .map_err(|s| ClientError::status("gather", s))?
                .into_inner();
            while let Some(chunk) = stream
                .message()
                .await
                .map_err(|s| ClientError::status("gather", s))?
            {
                for v in chunk.values {
                    let entry = out.entry(v.key).or_default();
                    if v.offset == 0 {
                        entry.clear();
                        entry.reserve(v.total_size as usize);
                    }
                    entry.extend_from_slice(&v.data);
                }
            }
        }
        Ok(out)
    }

    pub async fn release(&self, keys: Vec<String>) -> Result<(), ClientError> {
        let mut inner = self.inner.clone();
        inner
            .release(v1::KeysParams {
                session_id: self.session_id,
                keys,
            })
            .await
            .map(|_| ())
            .map_err(|s| ClientError::status("release", s))
    }

    pub async fn cancel(&self, keys: Vec<String>) -> Result<(), ClientError> {
        let mut inner = self.inner.clone();
        inner
            .cancel(v1::KeysParams {
                session_id: self.session_id,
                keys,
            })
            .await
            .map(|_| ())
            .map_err(|s| ClientError::status("cancel", s))
    }

    pub async fn cluster_info(&self) -> Result<v1::ClusterStatus, ClientError> {
        let mut inner = self.inner.clone();
        inner
            .get_cluster_info(v1::Empty {})
            .await
            .map(|r| r.into_inner())
            .map_err(|s| ClientError::status("cluster info", s))
    }
}
