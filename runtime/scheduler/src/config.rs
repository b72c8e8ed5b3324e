//! Scheduler settings (from the CLI or a test).

use std::time::Duration;

use shoal_core::CoreConfig;
use shoal_proto::auth::Token;

#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// gRPC listen address, e.g. "127.0.0.1:8786" (port 0 picks one).
    pub listen: String,
    /// Metrics and health listen address.
    pub http_listen: String,
    pub token: Token,
    pub cluster_name: String,
    /// How often workers send heartbeats.
    pub heartbeat_interval: Duration,
    /// A worker silent this long is declared lost.
    pub heartbeat_timeout: Duration,
    /// Largest graph chunk accepted (encoded bytes).
    pub max_chunk_bytes: usize,
    /// How long a worker whose connection dropped is held before its loss is settled,
    /// waiting for the operator to report why (0: settled at once, as without operator).
    pub loss_report_wait: Duration,
    pub core: CoreConfig,
}

impl SchedulerConfig {
    pub fn new(listen: &str, http_listen: &str, token: Token) -> Self {
        SchedulerConfig {
            listen: listen.to_string(),
            http_listen: http_listen.to_string(),
            token,
            cluster_name: "local".to_string(),
            heartbeat_interval: Duration::from_secs(2),
            heartbeat_timeout: Duration::from_secs(30),
            max_chunk_bytes: 64 * 1024 * 1024,
            loss_report_wait: Duration::ZERO,
            core: CoreConfig::default(),
        }
    }
}
