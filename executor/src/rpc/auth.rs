//! The shared-secret check on every RPC: `authorization: Bearer <token>`, compared in constant
//! time. The token is never logged: [`AuthToken`]'s `Debug` prints a placeholder.

use std::fmt;
use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// A cluster's shared secret.
#[derive(Clone)]
pub struct AuthToken(Arc<str>);

impl AuthToken {
    /// A token from its text (surrounding whitespace, e.g. a file's newline, is dropped).
    ///
    /// # Errors
    /// An empty token.
    pub fn new(token: &str) -> Result<Self, String> {
        let token = token.trim();
        if token.is_empty() {
            return Err("the authentication token is empty".into());
        }
        Ok(Self(Arc::from(token)))
    }

    /// A fresh random token (for clusters whose executors the driver starts itself).
    pub fn generate() -> Self {
        let a = uuid_like();
        Self(Arc::from(a.as_str()))
    }

    /// The token's text, to hand to a child process (never to a log).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(<redacted>)")
    }
}

/// 244 random bits from the operating system, as hex.
fn uuid_like() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Server side: rejects a call without the right bearer token with `UNAUTHENTICATED`.
#[derive(Clone, Debug)]
pub struct CheckToken(pub AuthToken);

impl Interceptor for CheckToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            Some(t) if self.0.matches(t.as_bytes()) => Ok(request),
            Some(_) => Err(Status::unauthenticated("wrong authentication token")),
            None => Err(Status::unauthenticated(
                "missing authentication token (authorization: Bearer ...)",
            )),
        }
    }
}

/// Client side: adds the bearer token (if any) to every call.
#[derive(Clone, Debug)]
pub struct SendToken(pub Option<AuthToken>);

impl Interceptor for SendToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            let value = MetadataValue::try_from(format!("Bearer {}", token.expose()))
                .map_err(|_| Status::invalid_argument("the token is not a valid header value"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tokens_compare_and_never_print() {
        let t = AuthToken::new(" secret\n").unwrap();
        assert!(t.matches(b"secret"));
        assert!(!t.matches(b"secreT"));
        assert!(!t.matches(b"secret2"));
        assert!(!format!("{t:?}").contains("secret"));
        assert!(AuthToken::new("  ").is_err());
        assert_ne!(
            AuthToken::generate().expose(),
            AuthToken::generate().expose()
        );
    }
}
