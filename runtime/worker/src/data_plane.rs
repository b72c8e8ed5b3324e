//! The data plane server: serves held results to peers and to the scheduler's gather
//! proxy, in pieces of at most 1 MiB. Authenticated like every other call.

use std::sync::{Arc, Mutex};

use shoal_proto::v1;
use shoal_proto::v1::data_plane_server::DataPlane;
use tonic::{Request, Response, Status};

use crate::store::Store;

const PIECE_BYTES: usize = 1024 * 1024;

pub struct DataPlaneService {
    pub store: Arc<Mutex<Store>>,
}

#[tonic::async_trait]
impl DataPlane for DataPlaneService {
    type FetchStream = tokio_stream::Iter<std::vec::IntoIter<Result<v1::FetchChunk, Status>>>;

    async fn fetch(
        &self,
        request: Request<v1::FetchParams>,
    ) -> Result<Response<Self::FetchStream>, Status> {
        let ids = request.into_inner().tasks;
        let objects: Vec<(u64, Option<bytes::Bytes>)> = {
            let store = self
                .store
                .lock()
                .map_err(|_| Status::internal("object store poisoned"))?;
            ids.iter().map(|&id| (id, store.get(id))).collect()
        };
        let mut chunks = Vec::new();
        let mut chunk = v1::FetchChunk::default();
        let mut bytes = 0;
        for (id, data) in objects {
            let Some(data) = data else {
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
                    missing: false,
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
