//! Wire <-> domain conversion for payloads and errors (the core knows no proto types).

use shoal_core::{
    BuiltinOp, Loss, LossCause, MemoryFigures, Payload, PythonPayload, TaskError, WorkerLoss,
};

use crate::v1;

/// The wire payload of a domain payload.
pub fn payload_to_wire(payload: &Payload) -> v1::TaskPayload {
    use v1::builtin_task::Op;
    let kind = match payload {
        Payload::Builtin(op) => v1::task_payload::Kind::Builtin(v1::BuiltinTask {
            op: Some(match op {
                BuiltinOp::Noop => Op::Noop(v1::Empty {}),
                BuiltinOp::SleepMs(ms) => Op::SleepMs(*ms),
                BuiltinOp::Concat => Op::Concat(v1::Empty {}),
                BuiltinOp::Sum(v) => Op::Sum(*v),
                BuiltinOp::Allocate(n) => Op::AllocateBytes(*n),
                BuiltinOp::Fail(m) => Op::Fail(m.to_string()),
                BuiltinOp::Constant(b) => Op::Constant(b.to_vec()),
            }),
        }),
        Payload::Python(p) => v1::task_payload::Kind::Python(v1::PythonTask {
            pickled: p.pickled.to_vec(),
            shared: p.shared,
        }),
    };
    v1::TaskPayload { kind: Some(kind) }
}

/// The domain payload of a wire payload; `None` when it is empty.
pub fn payload_from_wire(payload: v1::TaskPayload) -> Option<Payload> {
    use v1::builtin_task::Op;
    match payload.kind? {
        v1::task_payload::Kind::Builtin(b) => Some(Payload::Builtin(match b.op? {
            Op::Noop(_) => BuiltinOp::Noop,
            Op::SleepMs(ms) => BuiltinOp::SleepMs(ms),
            Op::Concat(_) => BuiltinOp::Concat,
            Op::Sum(v) => BuiltinOp::Sum(v),
            Op::AllocateBytes(n) => BuiltinOp::Allocate(n),
            Op::Fail(m) => BuiltinOp::Fail(m.into()),
            Op::Constant(b) => BuiltinOp::Constant(b.into()),
        })),
        v1::task_payload::Kind::Python(p) if !p.pickled.is_empty() => {
            Some(Payload::Python(Box::new(PythonPayload {
                pickled: p.pickled.into_boxed_slice(),
                shared: p.shared,
            })))
        }
        v1::task_payload::Kind::Python(_) => None,
    }
}

pub fn error_to_wire(error: &TaskError) -> v1::TaskError {
    v1::TaskError {
        kind: error.kind.clone(),
        message: match &error.origin_key {
            Some(origin) => format!("dependency {origin:?} failed: {}", error.message),
            None => error.message.clone(),
        },
        detail: error.detail.clone(),
        worker: error.worker.clone(),
        exception: error.exception.clone(),
        losses: error
            .losses
            .iter()
            .map(|l| v1::WorkerLoss {
                worker: l.worker.clone(),
                cause: cause_to_wire(l.loss.cause) as i32,
                memory_limit: l.loss.memory_limit,
                detail: l.loss.detail.clone(),
            })
            .collect(),
        memory: error.memory.map(|m| {
            Box::new(v1::MemoryFigures {
                used: m.used,
                limit: m.limit,
                threshold: m.threshold,
                task_used: m.task_used,
            })
        }),
    }
}

pub fn cause_to_wire(cause: LossCause) -> v1::LossCause {
    match cause {
        LossCause::Unknown => v1::LossCause::Unspecified,
        LossCause::OomKilled => v1::LossCause::OomKilled,
        LossCause::Crashed => v1::LossCause::Crashed,
        LossCause::Removed => v1::LossCause::Removed,
    }
}

pub fn cause_from_wire(cause: i32) -> LossCause {
    match v1::LossCause::try_from(cause) {
        Ok(v1::LossCause::OomKilled) => LossCause::OomKilled,
        Ok(v1::LossCause::Crashed) => LossCause::Crashed,
        Ok(v1::LossCause::Removed) => LossCause::Removed,
        Ok(v1::LossCause::Unspecified) | Err(_) => LossCause::Unknown,
    }
}

pub fn error_from_wire(error: v1::TaskError) -> TaskError {
    TaskError {
        kind: error.kind,
        message: error.message,
        detail: error.detail,
        worker: error.worker,
        origin_key: None,
        exception: error.exception,
        losses: error
            .losses
            .into_iter()
            .map(|l| WorkerLoss {
                worker: l.worker,
                loss: Loss {
                    cause: cause_from_wire(l.cause),
                    memory_limit: l.memory_limit,
                    detail: l.detail,
                },
            })
            .collect(),
        memory: error.memory.map(|m| MemoryFigures {
            used: m.used,
            limit: m.limit,
            threshold: m.threshold,
            task_used: m.task_used,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every builtin op survives the round trip; an empty payload is recognised.
    #[test]
    fn payload_round_trip() {
        for op in [
            BuiltinOp::Noop,
            BuiltinOp::SleepMs(5),
            BuiltinOp::Concat,
            BuiltinOp::Sum(-3),
            BuiltinOp::Allocate(10),
            BuiltinOp::Fail("boom".into()),
            BuiltinOp::Constant(vec![1, 2].into()),
        ] {
            let p = Payload::Builtin(op);
            assert_eq!(payload_from_wire(payload_to_wire(&p)), Some(p));
        }
        assert_eq!(payload_from_wire(v1::TaskPayload { kind: None }), None);
    }
}
