//! The cluster's bearer token: checking it on the server side, attaching it on the client
//! side, and naming it in errors without revealing it (a short SHA-256 fingerprint).

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::AUTHORIZATION;

/// A cluster auth token. `Debug` and `Display` show only its fingerprint.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

impl Token {
    pub fn new(value: &str) -> Result<Self, TokenError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(TokenError::Empty);
        }
        if value.chars().any(|c| !c.is_ascii_graphic()) {
            return Err(TokenError::NotPrintable);
        }
        Ok(Token(value.into()))
    }

    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Whether a received token is this one (compared in time independent of where they
    /// differ).
    pub fn matches(&self, received: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), received.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The first 8 hex digits of the token's SHA-256: safe to log and to show in errors.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }

    /// What the dashboard keeps in its cookie: a digest of the token, not the token (a
    /// leaked cookie does not open the gRPC API).
    pub fn cookie_value(&self) -> String {
        let digest = Sha256::digest(format!("shoal-dashboard-cookie\0{}", self.0).as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn fingerprint(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(sha256:{}…)", self.fingerprint())
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}…", self.fingerprint())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the auth token is empty; pass --token, --token-file or SHOAL_TOKEN")]
    Empty,
    #[error("the auth token has non-printable characters or spaces")]
    NotPrintable,
}

/// Server side: refuses calls without the cluster's token.
#[derive(Clone)]
pub struct CheckToken {
    pub expected: Token,
}

impl Interceptor for CheckToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let received = header.and_then(|h| h.strip_prefix("Bearer "));
        match received {
            Some(token) if self.expected.matches(token) => Ok(request),
            Some(token) => Err(Status::unauthenticated(format!(
                "wrong auth token: this cluster expects the token with fingerprint sha256:{}…, \
                 the request carried sha256:{}…; use this cluster's token (the `shoal local` \
                 banner, the scheduler's --token-file, or on Kubernetes the cluster's Secret)",
                self.expected.fingerprint(),
                fingerprint(token)
            ))),
            None => Err(Status::unauthenticated(format!(
                "no auth token: this cluster expects `authorization: Bearer <token>` with the \
                 token of fingerprint sha256:{}…; pass the cluster's token (token=... or \
                 SHOAL_TOKEN)",
                self.expected.fingerprint()
            ))),
        }
    }
}

/// Client side: attaches the token to every call.
#[derive(Clone)]
pub struct AttachToken {
    header: MetadataValue<tonic::metadata::Ascii>,
}

impl AttachToken {
    pub fn new(token: &Token) -> Self {
        let header = format!("Bearer {}", token.secret())
            .parse()
            .expect("a token of printable ASCII is a valid header value");
        AttachToken { header }
    }
}

impl Interceptor for AttachToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert(AUTHORIZATION, self.header.clone());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The right token passes; a wrong or missing one is refused naming both fingerprints
    /// and never the secret.
    #[test]
    fn token_check() {
        let expected = Token::new("right-token").expect("valid");
        let mut check = CheckToken {
            expected: expected.clone(),
        };
        let mut ok = Request::new(());
        AttachToken::new(&expected)
            .call(Request::new(()))
            .map(|r| *ok.metadata_mut() = r.metadata().clone())
            .expect("attach");
        assert!(check.call(ok).is_ok());
        let wrong = Token::new("wrong-token").expect("valid");
        let req = AttachToken::new(&wrong)
            .call(Request::new(()))
            .expect("attach");
        let err = check.call(req).expect_err("refused");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(err.message().contains(&expected.fingerprint()));
        assert!(err.message().contains(&wrong.fingerprint()));
        assert!(!err.message().contains("wrong-token"));
        let err = check.call(Request::new(())).expect_err("refused");
        assert!(err.message().contains("no auth token"));
    }

    /// A token matches only itself.
    #[test]
    fn token_matches() {
        let t = Token::new("abc").expect("valid");
        assert!(t.matches("abc"));
        assert!(!t.matches("abd"));
        assert!(!t.matches("ab"));
        assert!(!t.matches(""));
    }

    /// Empty tokens are refused with the ways to pass one.
    #[test]
    fn empty_token() {
        assert_eq!(Token::new("  "), Err(TokenError::Empty));
    }
}
