//! Signing the gateway's tokens with the active key.

use serde::Serialize;

use super::IssueError;
use crate::server::Gateway;

/// Claims of every token the gateway issues (SPEC: iss, aud, sub, exp, iat,
/// jti, org_id, scope, token_type, uid; plus the deriving credential `cid`).
#[derive(Debug, Serialize)]
pub struct TokenClaims<'a> {
    pub iss: &'a str,
    pub aud: &'a str,
    pub sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    pub iat: i64,
    pub nbf: i64,
    pub jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<&'a str>,
    pub scope: &'a str,
    pub token_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ro: bool,
}

/// Sign with the active key; its `kid` goes in the header.
pub fn sign(gw: &Gateway, claims: &TokenClaims<'_>) -> Result<String, IssueError> {
    let keys = gw.verifier.keys();
    let key = keys
        .active
        .as_ref()
        .ok_or(IssueError::Server("no active signing key"))?;
    let mut h = jsonwebtoken::Header::new(key.alg);
    h.kid = Some(key.kid.to_string());
    h.typ = Some("JWT".into());
    jsonwebtoken::encode(&h, claims, &key.encoding).map_err(|_| IssueError::Server("signing failed"))
}

/// RFC 3339 UTC (`2025-12-29T15:30:00Z`).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
