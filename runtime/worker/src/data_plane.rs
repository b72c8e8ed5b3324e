//! The data plane server: serves held results to peers and to the scheduler's gather
//! proxy, in pieces of at most 1 MiB, or, when the caller is on this machine and asks, as
//! the paths of the files that hold them. Results live in an executor are first written
//! into the store (the executor pool is asked and awaited). Authenticated like every other
//! call. Files are read outside the store's lock.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use shoal_proto::v1;
use shoal_proto::v1::data_plane_server::DataPlane;
use tonic::{Request, Response, Status};

use crate::python::Publisher;
use crate::store::{Located, Store};

const PIECE_BYTES: usize = 1024 * 1024;

pub struct DataPlaneService {
    pub store: Arc<Mutex<Store>>,
    /// Has live results written (none: the worker runs no Python executors).
    pub publisher: Option<Publisher>,
}

impl DataPlaneService {
    fn locate(&self, id: u64) -> Result<Option<Located>, Status> {
        let store = self
            .store
            .lock()
            .map_err(|_| Status::internal("object store poisoned"))?;
        Ok(store.locate(id))
    }

    /// The bytes of `id` found at `located`, or `None` when it is not held. A file
    /// removed under the read (the object spilled meanwhile) is located again.
    fn read(&self, id: u64, mut located: Option<Located>) -> Result<Option<Bytes>, Status> {
        for _ in 0..3 {
            match located {
                None => return Ok(None),
                Some(place) => {
                    if let Ok(data) = place.read() {
                        return Ok(Some(data));
                    }
                }
            }
            located = self.locate(id)?;
        }
        Ok(None)
    }
}

#[tonic::async_trait]
impl DataPlane for DataPlaneService {
    type FetchStream = tokio_stream::Iter<std::vec::IntoIter<Result<v1::FetchChunk, Status>>>;

    async fn fetch(
        &self,
        request: Request<v1::FetchParams>,
    ) -> Result<Response<Self::FetchStream>, Status> {
        let v1::FetchParams { tasks: ids, files } = request.into_inner();
        if let Some(publisher) = &self.publisher {
            let live: Vec<u64> = {
                let store = self
                    .store
                    .lock()
                    .map_err(|_| Status::internal("object store poisoned"))?;
                ids.iter()
                    .copied()
                    .filter(|&id| store.is_live(id))
                    .collect()
            };
            if !live.is_empty() {
                publisher.publish(live).await;
            }
        }
        let mut chunks = Vec::new();
        let mut chunk = v1::FetchChunk::default();
        let mut bytes = 0;
        for id in ids {
            let located = self.locate(id)?;
            if files
                && let Some(Located::File(path)) = &located
                && let Ok(meta) = std::fs::metadata(path)
            {
                chunk.pieces.push(v1::ObjectPiece {
                    task: id,
                    total_size: meta.len(),
                    path: path.to_string_lossy().into_owned(),
                    ..Default::default()
                });
                continue;
            }
            let Some(data) = self.read(id, located)? else {
                chunk.pieces.push(v1::ObjectPiece {
                    task: id,
                    missing: true,
                    ..Default::default()
                });
                continue;
            };
            let total = data.len();
            let mut offset = 0;
            loop {
                let end = (offset + PIECE_BYTES).min(total);
                chunk.pieces.push(v1::ObjectPiece {
                    task: id,
                    data: data.slice(offset..end),
                    offset: offset as u64,
                    total_size: total as u64,
                    ..Default::default()
                });
                bytes += end - offset + 24;
                if bytes >= PIECE_BYTES {
                    chunks.push(Ok(std::mem::take(&mut chunk)));
                    bytes = 0;
                }
                offset = end;
                if offset >= total {
                    break;
                }
            }
        }
        if !chunk.pieces.is_empty() {
            chunks.push(Ok(chunk));
        }
        Ok(Response::new(tokio_stream::iter(chunks)))
    }
}
