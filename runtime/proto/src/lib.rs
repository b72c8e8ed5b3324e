//! Shoal's wire contract: the Rust code generated from `proto/shoal/v1`, the version
//! constants every handshake compares, and the metadata key of the auth token.
//!
//! It does not hold domain logic: conversions into scheduler types live with their users.

pub mod auth;
pub mod convert;
pub mod version;

/// Generated messages and services of package `shoal.v1`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("shoal.v1");
}

/// The protocol version this build speaks (`ProtocolVersion::Current` in the proto).
pub const PROTOCOL_VERSION: u32 = v1::ProtocolVersion::Current as u32;

/// The runtime version of this build: the workspace version shared by every crate.
/// A build may claim another version by setting `SHOAL_BUILD_VERSION` at compile time;
/// only the version-skew test image does (`make skew-bin`).
pub const RUNTIME_VERSION: &str = match option_env!("SHOAL_BUILD_VERSION") {
    Some(version) => version,
    None => env!("CARGO_PKG_VERSION"),
};

/// Metadata key carrying `Bearer <token>` on every authenticated call.
pub const AUTHORIZATION: &str = "authorization";

/// The version pair this build sends in handshakes.
pub fn version_info() -> v1::VersionInfo {
    v1::VersionInfo {
        protocol_version: PROTOCOL_VERSION,
        runtime_version: RUNTIME_VERSION.to_string(),
    }
}

/// Accepted connections of a gRPC server with TCP_NODELAY set: without it, small messages
/// (batched completions, assignments) wait for delayed ACKs and a session crawls.
pub fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}
