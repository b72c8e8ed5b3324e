//! The operator's side of the scheduler's `Control` API: asking for the autoscaling
//! estimate per group (`GetAdaptiveTarget`) and retiring named workers before their pods
//! are deleted (`RetireWorkers`). I/O and wire conversion only; callers decide.

use crate::reconcile::autoscale::Advice;
use shoal_proto::auth::{AttachToken, Token, TokenError};
use shoal_proto::v1::control_client::ControlClient;
use shoal_proto::v1::{AdaptiveParams, RetireWorkersParams, WorkerGroupSpec};
use std::collections::{BTreeMap, HashMap};
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
    #[error("the scheduler at {address} refused {call}")]
    Call {
        address: String,
        call: &'static str,
        source: tonic::Status,
    },
}

/// What each worker of a group offers, as the scheduler is told.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupOffer {
    pub name: String,
    /// 0: unknown.
    pub cores: u32,
    /// Bytes; 0: unknown.
    pub memory_limit: u64,
    pub resources: BTreeMap<String, f64>,
}

/// The scheduler's answer to `GetAdaptiveTarget`, in the operator's terms.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Adaptive {
    pub groups: BTreeMap<String, Advice>,
    /// Seconds with no client and no work.
    pub idle_seconds: f64,
    pub clients: u32,
    pub unfinished_tasks: u64,
}

async fn connect(
    address: &str,
    token: &str,
    timeout: Duration,
) -> Result<
    ControlClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, AttachToken>,
    >,
    SchedulerApiError,
> {
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
    Ok(ControlClient::with_interceptor(
        channel,
        AttachToken::new(&token),
    ))
}

/// Asks the scheduler at `address` how many workers each of `groups` should have.
pub async fn adaptive_target(
    address: &str,
    token: &str,
    groups: &[GroupOffer],
    target_duration_seconds: f64,
) -> Result<Adaptive, SchedulerApiError> {
    let mut client = connect(address, token, Duration::from_secs(5)).await?;
    let params = AdaptiveParams {
        groups: groups
            .iter()
            .map(|g| WorkerGroupSpec {
                name: g.name.clone(),
                cores: g.cores,
                memory_limit: g.memory_limit,
                resources: g.resources.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            })
            .collect(),
        target_duration_seconds,
    };
    let answer = client
        .get_adaptive_target(params)
        .await
        .map_err(|source| SchedulerApiError::Call {
            address: address.to_owned(),
            call: "GetAdaptiveTarget",
            source,
        })?
        .into_inner();
    Ok(Adaptive {
        groups: answer
            .groups
            .into_iter()
            .map(|g| {
                let advice = Advice {
                    desired: i32::try_from(g.desired_workers).unwrap_or(i32::MAX),
                    reason: g.reason,
                    retire_order: g.retire_order,
                };
                (g.name, advice)
            })
            .collect(),
        idle_seconds: answer.idle_seconds,
        clients: answer.clients,
        unfinished_tasks: answer.unfinished_tasks,
    })
}

/// Workers the scheduler retired, and those it refused with why.
pub struct Retirement {
    pub retired: Vec<String>,
    pub refused: HashMap<String, String>,
}

/// Asks the scheduler at `address` to retire `workers` (their data moves to other
/// workers first); the scheduler answers within `deadline`, refusing those whose data
/// could not move in time.
pub async fn retire(
    address: &str,
    token: &str,
    workers: Vec<String>,
    deadline: Duration,
) -> Result<Retirement, SchedulerApiError> {
    let timeout = deadline + Duration::from_secs(10);
    let mut client = connect(address, token, timeout).await?;
    let result = client
        .retire_workers(RetireWorkersParams {
            names: workers,
            deadline_seconds: deadline.as_secs_f64(),
        })
        .await
        .map_err(|source| SchedulerApiError::Call {
            address: address.to_owned(),
            call: "RetireWorkers",
            source,
        })?
        .into_inner();
    Ok(Retirement {
        retired: result.retired,
        refused: result.refused,
    })
}
