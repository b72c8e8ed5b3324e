//! The operator's side of the scheduler's `Control` API: retiring named workers before
//! their pods are deleted. I/O only; callers decide what to retire.

use shoal_proto::auth::{AttachToken, Token, TokenError};
use shoal_proto::v1::RetireWorkersParams;
use shoal_proto::v1::control_client::ControlClient;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerApiError {
    #[error("the cluster's auth token is unusable")]
    Token(#[source] TokenError),
    #[error("cannot reach the scheduler at {address}")]
    Connect {
        address: String,
        source: tonic::transport::Error,
    },
    #[error("the scheduler at {address} refused RetireWorkers")]
    Call {
        address: String,
        source: tonic::Status,
    },
}

/// Workers the scheduler retired, and those it refused with why.
pub struct Retirement {
    pub retired: Vec<String>,
    pub refused: HashMap<String, String>,
}

/// Asks the scheduler at `address` to retire `workers` (their data moves to other
/// workers first); answers once it has, or after `timeout`.
pub async fn retire(
    address: &str,
    token: &str,
    workers: Vec<String>,
    timeout: Duration,
) -> Result<Retirement, SchedulerApiError> {
    let token = Token::new(token).map_err(SchedulerApiError::Token)?;
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|source| SchedulerApiError::Connect {
            address: address.to_owned(),
            source,
        })?
        .connect_timeout(Duration::from_secs(3))
        .timeout(timeout);
    let channel = endpoint
        .connect()
        .await
        .map_err(|source| SchedulerApiError::Connect {
            address: address.to_owned(),
            source,
        })?;
    let mut client = ControlClient::with_interceptor(channel, AttachToken::new(&token));
    let result = client
        .retire_workers(RetireWorkersParams { names: workers })
        .await
        .map_err(|source| SchedulerApiError::Call {
            address: address.to_owned(),
            source,
        })?
        .into_inner();
    Ok(Retirement {
        retired: result.retired,
        refused: result.refused,
    })
}
