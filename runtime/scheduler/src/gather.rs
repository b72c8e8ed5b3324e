//! The gather proxy: clients fetch results through the scheduler (so it works through a
//! port-forward). Locations come from the core; the bytes come from the workers' data
//! plane and are streamed back in chunks.

use std::collections::HashMap;

use shoal_client::data::DataClients;
use shoal_proto::v1;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::actor::{Actor, Event};

/// Keys fetched from a worker per data-plane call.
const KEYS_PER_FETCH: usize = 16_384;
/// Bytes per chunk streamed to the client.
const CHUNK_BYTES: usize = 1024 * 1024;

pub async fn gather(
    actor: &Actor,
    data: &DataClients,
    keys: Vec<String>,
) -> Result<ReceiverStream<Result<v1::GatherChunk, Status>>, Status> {
    let located = actor
        .ask(|reply| Event::Locate {
            keys: keys.clone(),
            reply,
        })
        .await
        .ok_or_else(|| Status::unavailable("the scheduler is shutting down"))?;
    let mut by_worker: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    let mut problems = Vec::new();
    for (key, place) in keys.into_iter().zip(located) {
        match place {
            Ok((id, addresses)) => {
                let address = addresses.into_iter().next().unwrap_or_default();
                by_worker.entry(address).or_default().push((id, key));
            }
            Err(reason) => problems.push(reason),
        }
    }
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
                let keys: HashMap<u64, &str> =
                    batch.iter().map(|(id, k)| (*id, k.as_str())).collect();
                let fetched = match data
                    .fetch(&address, batch.iter().map(|(id, _)| *id).collect())
                    .await
                {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = tx
                            .send(Err(Status::unavailable(format!(
                                "cannot gather from worker at {address}: {e}"
                            ))))
                            .await;
                        return;
                    }
                };
                if !fetched.missing.is_empty() {
                    let names: Vec<&str> = fetched
                        .missing
                        .iter()
                        .filter_map(|id| keys.get(id).copied())
                        .take(5)
                        .collect();
                    let _ = tx.send(Err(Status::not_found(format!("worker at {address} no longer holds {names:?}; they were lost or released")))).await;
                    return;
                }
                let mut chunk = v1::GatherChunk::default();
                let mut bytes = 0;
                for (id, value) in fetched.objects {
                    bytes += value.len() + 32;
                    chunk.values.push(v1::KeyValue {
                        key: keys.get(&id).map(|k| k.to_string()).unwrap_or_default(),
                        total_size: value.len() as u64,
                        data: value,
                        offset: 0,
                    });
                    if bytes >= CHUNK_BYTES {
                        bytes = 0;
                        if tx.send(Ok(std::mem::take(&mut chunk))).await.is_err() {
                            return;
                        }
                    }
                }
                if !chunk.values.is_empty() && tx.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}
