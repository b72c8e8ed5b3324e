//! The operator's side of the scheduler's `Control` API: asking for the autoscaling
//! estimate per group (`GetAdaptiveTarget`), retiring named workers before their pods
//! are deleted (`RetireWorkers`) and saying why a worker's pod ended
//! (`ReportWorkerLost`, answered with the tasks it ran). I/O and wire conversion only;
//! callers decide.

use crate::reconcile::autoscale::Advice;
use crate::reconcile::losses::{Cause, Running};
use shoal_proto::auth::{AttachToken, Token, TokenError};
use shoal_proto::v1::control_client::ControlClient;
use shoal_proto::v1::{
    AdaptiveParams, LossCause, RetireWorkersParams, WorkerGroupSpec, WorkerLostParams,
    WorkerLostResult,
};
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

type Client = ControlClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, AttachToken>,
>;

async fn connect(
    address: &str,
    token: &str,
    timeout: Duration,
) -> Result<Client, SchedulerApiError> {
    let token = Token::new(token).map_err(SchedulerApiError::Token)?;
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|source| SchedulerApiError::Connect {
            address: address.to_owned(),
            source,
        })?
        .connect_timeout(timeout.min(Duration::from_secs(3)))
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

/// A worker whose pod ended, as the scheduler is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostWorker {
    /// The worker's name (its pod's).
    pub name: String,
    /// One line for humans: the pod, the container's reason and exit code, its limit.
    pub reason: String,
    pub cause: Cause,
    /// Bytes; 0: unknown.
    pub memory_limit: u64,
}

impl From<Cause> for LossCause {
    fn from(cause: Cause) -> Self {
        match cause {
            Cause::OomKilled => Self::OomKilled,
            Cause::Crashed => Self::Crashed,
            Cause::Removed => Self::Removed,
        }
    }
}

impl From<WorkerLostResult> for Running {
    fn from(result: WorkerLostResult) -> Self {
        if !result.known {
            return Self::UnknownWorker;
        }
        let listed = u32::try_from(result.running.len()).unwrap_or(u32::MAX);
        Self::Tasks {
            total: result.running_total.max(listed),
            keys: result.running,
        }
    }
}

/// Tells the scheduler at `address` why each of `workers` vanished, all at once over one
/// connection, each call within `timeout`; answers with what each was running, in order.
/// The outer error is the connection's (no call was made).
pub async fn report_lost(
    address: &str,
    token: &str,
    workers: &[LostWorker],
    timeout: Duration,
) -> Result<Vec<Result<Running, SchedulerApiError>>, SchedulerApiError> {
    let client = connect(address, token, timeout).await?;
    let calls = workers.iter().map(|worker| {
        let mut client = client.clone();
        let params = WorkerLostParams {
            name: worker.name.clone(),
            reason: worker.reason.clone(),
            cause: LossCause::from(worker.cause).into(),
            memory_limit: worker.memory_limit,
        };
        async move {
            client
                .report_worker_lost(params)
                .await
                .map(|answer| Running::from(answer.into_inner()))
                .map_err(|source| SchedulerApiError::Call {
                    address: address.to_owned(),
                    call: "ReportWorkerLost",
                    source,
                })
        }
    });
    Ok(futures::future::join_all(calls).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::v1;
    use shoal_proto::v1::control_server::{Control, ControlServer};
    use std::sync::{Arc, Mutex};
    use tonic::{Request, Response, Status};

    /// A scheduler's Control API that records `ReportWorkerLost` calls and answers from a
    /// fixed table (`stall`: never answers).
    #[derive(Default)]
    struct FakeScheduler {
        calls: Arc<Mutex<Vec<WorkerLostParams>>>,
        answers: Vec<(String, WorkerLostResult)>,
        stall: bool,
    }

    #[tonic::async_trait]
    impl Control for FakeScheduler {
        async fn get_status(
            &self,
            _: Request<v1::Empty>,
        ) -> Result<Response<v1::ClusterStatus>, Status> {
            Err(Status::unimplemented("not in this test"))
        }

        async fn get_adaptive_target(
            &self,
            _: Request<AdaptiveParams>,
        ) -> Result<Response<v1::AdaptiveTarget>, Status> {
            Err(Status::unimplemented("not in this test"))
        }

        async fn retire_workers(
            &self,
            _: Request<RetireWorkersParams>,
        ) -> Result<Response<v1::RetireWorkersResult>, Status> {
            Err(Status::unimplemented("not in this test"))
        }

        async fn report_worker_lost(
            &self,
            request: Request<WorkerLostParams>,
        ) -> Result<Response<WorkerLostResult>, Status> {
            let params = request.into_inner();
            let name = params.name.clone();
            self.calls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(params);
            if self.stall {
                futures::future::pending::<()>().await;
            }
            let answer = self
                .answers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, a)| a.clone())
                .unwrap_or_default();
            Ok(Response::new(answer))
        }
    }

    /// Serves `fake` on a free port of 127.0.0.1; returns its address.
    async fn serve(fake: FakeScheduler) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| unreachable!("binding 127.0.0.1:0: {e}"));
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ControlServer::new(fake))
                .serve_with_incoming(incoming),
        );
        address
    }

    fn lost(name: &str, cause: Cause) -> LostWorker {
        LostWorker {
            name: name.to_owned(),
            reason: format!("pod {name}: container OOMKilled, exit code 137, memory limit 256Mi"),
            cause,
            memory_limit: 256 << 20,
        }
    }

    /// Each lost worker is one ReportWorkerLost with its name, reason, cause and limit in
    /// bytes; the answers become the tasks it ran, or "unknown worker".
    #[tokio::test]
    async fn reports_carry_the_cause_and_answers_name_the_tasks() {
        let fake = FakeScheduler {
            answers: vec![(
                "w-0".to_owned(),
                WorkerLostResult {
                    running: vec!["alloc-0".to_owned(), "x".to_owned()],
                    running_total: 2,
                    known: true,
                },
            )],
            ..FakeScheduler::default()
        };
        let calls = fake.calls.clone();
        let address = serve(fake).await;
        let workers = [lost("w-0", Cause::OomKilled), lost("w-1", Cause::Crashed)];
        let answers = report_lost(&address, "t", &workers, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let answers: Vec<Running> = answers.into_iter().filter_map(Result::ok).collect();
        assert_eq!(
            answers,
            [
                Running::Tasks {
                    keys: vec!["alloc-0".to_owned(), "x".to_owned()],
                    total: 2
                },
                Running::UnknownWorker
            ]
        );
        let mut calls = calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        calls.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].cause, i32::from(LossCause::OomKilled));
        assert_eq!(calls[1].cause, i32::from(LossCause::Crashed));
        assert_eq!(calls[0].memory_limit, 256 << 20);
        assert!(calls[0].reason.starts_with("pod w-0: container OOMKilled"));
    }

    /// A scheduler that never answers costs the caller the timeout, not the reconcile.
    #[tokio::test]
    async fn a_stalled_scheduler_times_out() {
        let fake = FakeScheduler {
            stall: true,
            ..FakeScheduler::default()
        };
        let address = serve(fake).await;
        let started = std::time::Instant::now();
        let answers = report_lost(
            &address,
            "t",
            &[lost("w-0", Cause::OomKilled)],
            Duration::from_millis(200),
        )
        .await
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(
                &answers[..],
                [Err(SchedulerApiError::Call {
                    call: "ReportWorkerLost",
                    ..
                })]
            ),
            "{answers:?}"
        );
    }

    /// No scheduler listening: the connection's error, and no call made.
    #[tokio::test]
    async fn no_scheduler_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| unreachable!("binding 127.0.0.1:0: {e}"));
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        drop(listener);
        let result = report_lost(
            &address,
            "t",
            &[lost("w-0", Cause::OomKilled)],
            Duration::from_millis(500),
        )
        .await;
        assert!(
            matches!(result, Err(SchedulerApiError::Connect { .. })),
            "{result:?}"
        );
    }
}
