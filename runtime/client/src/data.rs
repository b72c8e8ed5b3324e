//! Client of the workers' data plane: fetches objects by task id from a worker, with one
//! cached channel per address, and reassembles objects sent in pieces.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use shoal_proto::auth::{AttachToken, Token};
use shoal_proto::v1;
use shoal_proto::v1::data_plane_client::DataPlaneClient;
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;

use crate::{ClientError, channel};

type Inner = DataPlaneClient<InterceptedService<Channel, AttachToken>>;

/// What a fetch brought back.
#[derive(Debug, Default)]
pub struct Fetched {
    pub objects: HashMap<u64, Bytes>,
    /// Ids the worker said it does not hold.
    pub missing: Vec<u64>,
}

#[derive(Clone)]
pub struct DataClients {
    token: Token,
    cache: Arc<Mutex<HashMap<String, Inner>>>,
}

impl DataClients {
    pub fn new(token: Token) -> Self {
        DataClients {
            token,
            cache: Arc::default(),
        }
    }

    async fn client(&self, address: &str) -> Result<Inner, ClientError> {
        if let Some(c) = self.cache.lock().ok().and_then(|c| c.get(address).cloned()) {
            return Ok(c);
        }
        let channel = channel(address).await?;
        let client = DataPlaneClient::with_interceptor(channel, AttachToken::new(&self.token))
            .max_decoding_message_size(256 * 1024 * 1024);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(address.to_string(), client.clone());
        }
        Ok(client)
    }

    /// Forgets the channel to an address (after a failure, or when the peer left).
    pub fn forget(&self, address: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(address);
        }
    }

    /// Fetches objects from one worker, whole.
    pub async fn fetch(&self, address: &str, tasks: Vec<u64>) -> Result<Fetched, ClientError> {
        let mut pieces = self.pieces(address, tasks, false).await?;
        let mut out = Fetched::default();
        let mut partial: HashMap<u64, BytesMut> = HashMap::new();
        while let Some(chunk) = pieces.next().await? {
            for piece in chunk.pieces {
                if piece.missing {
                    out.missing.push(piece.task);
                } else if piece.offset == 0 && piece.data.len() as u64 == piece.total_size {
                    out.objects.insert(piece.task, piece.data);
                } else {
                    let buf = partial
                        .entry(piece.task)
                        .or_insert_with(|| BytesMut::with_capacity(piece.total_size as usize));
                    buf.extend_from_slice(&piece.data);
                    if buf.len() as u64 == piece.total_size
                        && let Some(done) = partial.remove(&piece.task)
                    {
                        out.objects.insert(piece.task, done.freeze());
                    }
                }
            }
        }
        Ok(out)
    }

    /// Fetches objects from one worker as the pieces it sends them in (at most 1 MiB
    /// each, an object's in order): for a caller that passes them on without holding whole
    /// objects, such as the scheduler's gather proxy.
    pub async fn pieces(
        &self,
        address: &str,
        tasks: Vec<u64>,
        files: bool,
    ) -> Result<Pieces, ClientError> {
        let mut client = self.client(address).await?;
        match client.fetch(v1::FetchParams { tasks, files }).await {
            Ok(stream) => Ok(Pieces {
                stream: stream.into_inner(),
                address: address.to_string(),
                clients: self.clone(),
            }),
            Err(s) => Err(self.refused(address, s)),
        }
    }

    fn refused(&self, address: &str, s: tonic::Status) -> ClientError {
        self.forget(address);
        ClientError::Refused {
            call: "fetch",
            code: s.code(),
            message: format!("from {address}: {}", s.message()),
        }
    }
}

/// The pieces of a fetch, chunk by chunk.
pub struct Pieces {
    stream: tonic::Streaming<v1::FetchChunk>,
    address: String,
    clients: DataClients,
}

impl Pieces {
    /// The next chunk of pieces, or None at the end.
    pub async fn next(&mut self) -> Result<Option<v1::FetchChunk>, ClientError> {
        self.stream
            .message()
            .await
            .map_err(|s| self.clients.refused(&self.address, s))
    }
}
