//! The version check of every handshake: protocol and runtime version must both match.

use crate::v1::VersionInfo;
use crate::{PROTOCOL_VERSION, RUNTIME_VERSION};

/// Who is checking whom, for the fix in the message.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    Client,
    Worker,
}

/// A version mismatch, naming both sides and the fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "version mismatch: the scheduler runs shoal {ours} (protocol {our_protocol}), this {peer} \
     runs shoal {theirs} (protocol {their_protocol}); {fix}"
)]
pub struct VersionMismatch {
    pub peer: &'static str,
    pub ours: String,
    pub our_protocol: u32,
    pub theirs: String,
    pub their_protocol: u32,
    pub fix: String,
}

/// Checks a peer's version against this build (the scheduler's).
pub fn check_peer_version(peer: Peer, theirs: Option<&VersionInfo>) -> Result<(), VersionMismatch> {
    let (their_protocol, their_version) = theirs
        .map(|v| (v.protocol_version, v.runtime_version.as_str()))
        .unwrap_or((0, "unknown"));
    if their_protocol == PROTOCOL_VERSION && their_version == RUNTIME_VERSION {
        return Ok(());
    }
    let (peer_name, fix) = match peer {
        Peer::Client => (
            "client",
            format!(
                "install the matching client (pip install shoal=={RUNTIME_VERSION}) or connect \
                 to a cluster of version {their_version}"
            ),
        ),
        Peer::Worker => (
            "worker",
            format!(
                "start workers from the scheduler's image (shoal {RUNTIME_VERSION}); a cluster \
                 never mixes versions"
            ),
        ),
    };
    Err(VersionMismatch {
        peer: peer_name,
        ours: RUNTIME_VERSION.to_string(),
        our_protocol: PROTOCOL_VERSION,
        theirs: their_version.to_string(),
        their_protocol,
        fix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer of another version is refused with both versions and the fix named.
    #[test]
    fn mismatch_names_both_versions_and_the_fix() {
        assert!(check_peer_version(Peer::Client, Some(&crate::version_info())).is_ok());
        let other = VersionInfo {
            protocol_version: PROTOCOL_VERSION + 1,
            runtime_version: "9.9.9".into(),
        };
        let err = check_peer_version(Peer::Client, Some(&other)).expect_err("mismatch");
        let text = err.to_string();
        assert!(
            text.contains("9.9.9") && text.contains(RUNTIME_VERSION),
            "{text}"
        );
        assert!(
            text.contains(&format!("protocol {}", PROTOCOL_VERSION + 1)),
            "{text}"
        );
        assert!(text.contains("pip install shoal=="), "{text}");
        let err = check_peer_version(Peer::Worker, None).expect_err("missing");
        assert!(err.to_string().contains("image"), "{err}");
    }
}
