//! Shoal's scheduling core: the pure state machine that decides which task runs where.
//!
//! Tasks and workers live in arenas indexed by dense ids; event handlers (`on_graph`,
//! `on_task_finished`, `on_worker_lost`, ...) mutate the state and send messages through
//! the [`Comm`] output port. No async, no I/O, no clock: time and messages are arguments,
//! so tests drive it step by step and call [`Core::sanity_check`] after each.
//!
//! Not here: networking, wire formats, executing tasks.

pub mod adaptive;
pub mod comm;
pub mod core;
pub mod graph;
pub mod ids;
pub mod loss;
mod placement;
pub use crate::placement::MAX_FAMILY;
pub mod prefix;
mod reactor;
pub mod resources;
pub mod task;
pub mod worker;

pub use crate::adaptive::{GroupEstimate, GroupSpec};
pub use crate::comm::{Assignment, Comm, InputLocation, Sent, TestComm};
pub use crate::core::{Core, CoreConfig, PrefixStats, StateCounts};
pub use crate::graph::{GraphError, KeyList, NewTask};
pub use crate::ids::{ClientId, PrefixId, TaskId, TaskRef, WorkerId};
pub use crate::loss::{Loss, LossAnswer, LossCause, MemoryFigures, WorkerLoss};
pub use crate::reactor::{GraphSummary, LossReport, Report, WorkerEventError};
pub use crate::resources::Resources;
pub use crate::task::{BuiltinOp, Dependents, Payload, PythonPayload, Task, TaskError, TaskState};
pub use crate::worker::{Worker, WorkerState};
