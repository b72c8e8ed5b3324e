//! The `Control` gRPC service for the operator: status (desired workers, idle time), the
//! autoscaling estimate per worker group, retiring named workers, and the reason a worker
//! vanished. Not here: the estimate itself (the core's `adaptive` module).

use shoal_proto::v1;
use shoal_proto::v1::control_server::Control;
use tonic::{Request, Response, Status};

use crate::actor::{Actor, Event};

pub struct ControlService {
    actor: Actor,
}

impl ControlService {
    pub fn new(actor: Actor) -> Self {
        ControlService { actor }
    }
}

#[tonic::async_trait]
impl Control for ControlService {
    async fn get_status(
        &self,
        _: Request<v1::Empty>,
    ) -> Result<Response<v1::ClusterStatus>, Status> {
        self.actor
            .request(|reply| Event::Status { reply })
            .await
            .map(Response::new)
    }

    async fn get_adaptive_target(
        &self,
        request: Request<v1::AdaptiveParams>,
    ) -> Result<Response<v1::AdaptiveTarget>, Status> {
        let params = request.into_inner();
        self.actor
            .request(|reply| Event::Adaptive { params, reply })
            .await
            .map(Response::new)
    }

    async fn retire_workers(
        &self,
        request: Request<v1::RetireWorkersParams>,
    ) -> Result<Response<v1::RetireWorkersResult>, Status> {
        let p = request.into_inner();
        let (names, deadline_s) = (p.names, p.deadline_seconds);
        self.actor
            .request(|reply| Event::Retire {
                names,
                deadline_s,
                reply,
            })
            .await
            .map(Response::new)
    }

    async fn report_worker_lost(
        &self,
        request: Request<v1::WorkerLostParams>,
    ) -> Result<Response<v1::WorkerLostResult>, Status> {
        let p = request.into_inner();
        let loss = shoal_core::Loss {
            cause: shoal_proto::convert::cause_from_wire(p.cause),
            memory_limit: p.memory_limit,
            detail: p.reason,
        };
        let name = p.name;
        let answer = self
            .actor
            .request(|reply| Event::LostReason { name, loss, reply })
            .await?;
        Ok(Response::new(v1::WorkerLostResult {
            running: answer.running,
            running_total: answer.running_total as u32,
            known: answer.known,
        }))
    }
}
