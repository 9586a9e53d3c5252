//! The gateway's tokens: the one claims type, signing with the active key,
//! and rotating the signing keys.

use serde::Serialize;

use super::{CredentialError, Op};
use crate::auth::keys::{self, KeySet};
use crate::clock::now_unix;
use crate::config::Config;
use crate::grants::{Grant, GrantClaim};

/// Claims of every token the gateway issues (iss, aud, sub, exp, iat, nbf,
/// jti, org_id, scope, token_type, uid, username; plus the deriving
/// credential `cid`, the read-only mark `ro`, the tile grant `tiles` and the allowed
/// `origins`). Made with [`Self::new`]
/// and the setters for what a kind of token carries.
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
    /// The tile grant (`docs/grants.md`): absent when unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tiles: Option<GrantClaim>,
    /// Web origins the token may be used from on routes that bind origins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origins: Option<&'a [String]>,
}

impl<'a> TokenClaims<'a> {
    /// A token of `cfg`'s issuer and audience for `sub`, issued and valid
    /// from `now` until `exp` (`None`: never expires), with nothing else.
    pub fn new(
        cfg: &'a Config,
        token_type: &'a str,
        sub: &'a str,
        jti: &'a str,
        scope: &'a str,
        now: i64,
        exp: Option<i64>,
    ) -> TokenClaims<'a> {
        TokenClaims {
            iss: &cfg.tokens.issuer,
            aud: &cfg.tokens.audience,
            sub,
            exp,
            iat: now,
            nbf: now,
            jti,
            org_id: None,
            scope,
            token_type,
            uid: None,
            username: None,
            cid: None,
            ro: false,
            tiles: None,
            origins: None,
        }
    }

    pub fn org(mut self, org_id: Option<&'a str>) -> Self {
        self.org_id = org_id;
        self
    }

    /// The user (or service account) the token acts for.
    pub fn user(mut self, uid: &'a str, username: Option<&'a str>) -> Self {
        self.uid = Some(uid);
        self.username = username;
        self
    }

    /// The credential it derives from: revoking that id revokes the token.
    pub fn credential(mut self, cid: &'a str) -> Self {
        self.cid = Some(cid);
        self
    }

    /// The tile grant the token carries; an unlimited one (or none) is
    /// left out of the token.
    pub fn tiles(mut self, grant: Option<&Grant>) -> Self {
        self.tiles = grant.filter(|g| !g.is_unlimited()).map(Grant::to_claim);
        self
    }

    /// The web origins the token may be used from (`None`: any). An empty
    /// list is signed as it is, `"origins": []`, which allows no origin on
    /// routes that bind origins: a limit never widens to none.
    pub fn origins(mut self, origins: Option<&'a [String]>) -> Self {
        self.origins = origins;
        self
    }

    pub fn read_only(mut self, ro: bool) -> Self {
        self.ro = ro;
        self
    }

    /// Sign with the active key of `keys`; its `kid` goes in the header.
    pub fn sign(&self, keys: &KeySet) -> Result<String, CredentialError> {
        let key = keys.active.as_ref().ok_or(CredentialError::NoSigningKey)?;
        let mut h = jsonwebtoken::Header::new(key.alg);
        h.kid = Some(key.kid.to_string());
        h.typ = Some("JWT".into());
        jsonwebtoken::encode(&h, self, &key.encoding).map_err(|_| CredentialError::SigningFailed)
    }
}

/// A new active signing key; the old ones stay in the JWKS for the grace.
/// A running replica signs with it at once; the others on the store's
/// notification or their periodic key refresh.
pub async fn rotate_keys(op: &Op<'_>) -> Result<String, CredentialError> {
    let k = keys::generate(op.cfg.tokens.algorithm, now_unix())
        .map_err(|e| CredentialError::KeyGeneration(e.to_string()))?;
    op.store.insert_signing_key(&k).await?;
    op.audit("signing_key.rotated", &k.kid, &k.alg).await?;
    if let Some(l) = &op.local {
        l.verifier.reload_keys().await?;
    }
    Ok(k.kid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        crate::config::from_str("[scopes]\n\"tiles:read\" = \"r\"\n").unwrap()
    }

    fn signed_origins(cfg: &Config, origins: Option<&[String]>) -> Option<serde_json::Value> {
        let c = TokenClaims::new(cfg, "access", "sub", "jti", "tiles:read", 0, Some(60)).origins(origins);
        serde_json::to_value(&c).unwrap().get("origins").cloned()
    }

    #[test]
    fn an_empty_origin_list_is_signed_as_no_origin_not_any() {
        let cfg = cfg();
        assert_eq!(signed_origins(&cfg, None), None);
        assert_eq!(signed_origins(&cfg, Some(&[])), Some(serde_json::json!([])));
        let one = vec!["https://app.example.com".to_owned()];
        assert_eq!(
            signed_origins(&cfg, Some(&one)),
            Some(serde_json::json!(["https://app.example.com"]))
        );
    }
}
