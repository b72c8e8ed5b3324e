//! The gather proxy: clients fetch results through the scheduler (so it works through a
//! port-forward). Locations come from the core; the bytes come from the workers' data
//! plane and are streamed back in chunks as they arrive, a large value in its pieces, so
//! that no value is ever whole in the scheduler and none is limited by a message's size.
//! A client on the workers' machine may ask for the paths of values in the workers' files
//! instead, and read them itself.

use std::collections::HashMap;

use shoal_client::data::DataClients;
use shoal_proto::v1;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::actor::{Actor, Event, Located};

/// Keys fetched from a worker per data-plane call.
const KEYS_PER_FETCH: usize = 16_384;
/// Bytes per chunk streamed to the client.
const CHUNK_BYTES: usize = 1024 * 1024;

pub async fn gather(
    actor: &Actor,
    data: &DataClients,
    keys: Vec<String>,
    files: bool,
) -> Result<ReceiverStream<Result<v1::GatherChunk, Status>>, Status> {
    let located = actor.request(|reply| Event::Locate { keys, reply }).await?;
    let Located {
        keys,
        by_worker,
        problems,
    } = located;
    if !problems.is_empty() {
        let more = problems.len().saturating_sub(5);
        let mut message = problems.into_iter().take(5).collect::<Vec<_>>().join("; ");
        if more > 0 {
            message.push_str(&format!("; and {more} more"));
        }
        return Err(Status::not_found(format!("cannot gather: {message}")));
    }
    let (tx, rx) = mpsc::channel(8);
    let data = data.clone();
    tokio::spawn(async move {
        for (address, items) in by_worker {
            for batch in items.chunks(KEYS_PER_FETCH) {
                let index: HashMap<u64, u32> = batch.iter().copied().collect();
                let ids = batch.iter().map(|(id, _)| *id).collect();
                let unavailable = |e| {
                    Status::unavailable(format!("cannot gather from the worker at {address}: {e}"))
                };
                let mut pieces = match data.pieces(&address, ids, files).await {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(unavailable(e))).await;
                        return;
                    }
                };
                let key_of = |id: &u64| index.get(id).map(|&i| keys[i as usize].as_str());
                // Pieces go on as they come (a large value never whole in the scheduler),
                // gathered into chunks of about CHUNK_BYTES.
                let mut missing = Vec::new();
                let mut chunk = v1::GatherChunk::default();
                let mut bytes = 0;
                loop {
                    let fetched = match pieces.next().await {
                        Ok(Some(fetched)) => fetched,
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Err(unavailable(e))).await;
                            return;
                        }
                    };
                    for piece in fetched.pieces {
                        if piece.missing {
                            missing.push(piece.task);
                            continue;
                        }
                        bytes += piece.data.len() + 32;
                        chunk.values.push(v1::KeyValue {
                            key: key_of(&piece.task).unwrap_or_default().to_string(),
                            data: piece.data,
                            offset: piece.offset,
                            total_size: piece.total_size,
                            path: piece.path,
                        });
                        if bytes >= CHUNK_BYTES {
                            bytes = 0;
                            if tx.send(Ok(std::mem::take(&mut chunk))).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                if !missing.is_empty() {
                    let names: Vec<&str> = missing.iter().filter_map(key_of).take(5).collect();
                    let status = Status::not_found(format!(
                        "the worker at {address} no longer holds {names:?}; they were lost or released"
                    ));
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                if !chunk.values.is_empty() && tx.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}
