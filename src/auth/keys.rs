//! The gateway's own signing keys: generated with aws-lc-rs, persisted in the
//! store (private half encrypted with the KEK), loaded into a [`KeySet`]
//! that signs with the active key and verifies with every key still inside
//! its rotation grace. Published as a JWKS.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use crate::store::{NewSigningKey, SigningKeyRecord};

/// One key of the gateway's.
pub struct OwnKey {
    pub kid: Arc<str>,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// The public JWK (with `kid`, `alg`, `use`).
    pub jwk: serde_json::Value,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for OwnKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The keys in use: the active one signs, all verify.
#[derive(Debug, Default)]
pub struct KeySet {
    pub active: Option<Arc<OwnKey>>,
    pub by_kid: HashMap<Arc<str>, Arc<OwnKey>>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unsupported signing algorithm {0:?}")]
    Unsupported(Algorithm),
    #[error("key generation failed")]
    Generate,
    #[error("stored key {kid} is unreadable: {why}")]
    Corrupt { kid: String, why: String },
}

/// Make a new key pair for `alg`, ready to store.
pub fn generate(alg: Algorithm, now: i64) -> Result<NewSigningKey, KeyError> {
    let rng = SystemRandom::new();
    let mut kid_bytes = [0u8; 9];
    aws_lc_rs::rand::fill(&mut kid_bytes).map_err(|_| KeyError::Generate)?;
    let kid = format!("tg-{}", B64.encode(kid_bytes));
    let (der, jwk) = match alg {
        Algorithm::ES256 => {
            let doc =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|_| KeyError::Generate)?;
            let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref())
                .map_err(|_| KeyError::Generate)?;
            let point = kp.public_key().as_ref();
            let jwk = serde_json::json!({
                "kty": "EC", "crv": "P-256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
                "kid": kid, "alg": "ES256", "use": "sig",
            });
            (doc.as_ref().to_vec(), jwk)
        }
        Algorithm::EdDSA => {
            let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Generate)?;
            let kp = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|_| KeyError::Generate)?;
            let jwk = serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": B64.encode(kp.public_key().as_ref()),
                "kid": kid, "alg": "EdDSA", "use": "sig",
            });
            (doc.as_ref().to_vec(), jwk)
        }
        Algorithm::RS256 => {
            use aws_lc_rs::encoding::AsDer;
            use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
            let kp = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
            let pkcs8 = kp.as_der().map_err(|_| KeyError::Generate)?;
            let public = kp.public_key();
            let (n, e) = rsa_components(public.as_ref()).ok_or(KeyError::Generate)?;
            let jwk = serde_json::json!({
                "kty": "RSA", "n": B64.encode(n), "e": B64.encode(e), "kid": kid, "alg": "RS256", "use": "sig",
            });
            (pkcs8.as_ref().to_vec(), jwk)
        }
        other => return Err(KeyError::Unsupported(other)),
    };
    Ok(NewSigningKey {
        kid,
        alg: alg_name(alg).to_owned(),
        private_pkcs8_der: der,
        public_jwk: jwk.to_string(),
        created_at: now,
    })
}

/// One DER TLV: (tag, body, rest).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let l0 = *b.get(1)? as usize;
    let (len, hdr) = if l0 < 0x80 {
        (l0, 2)
    } else {
        let n = l0 & 0x7f;
        if n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let body = b.get(hdr..hdr.checked_add(len)?)?;
    Some((tag, body, &b[hdr + len..]))
}

/// The private key inside a PKCS#8 PrivateKeyInfo (its OCTET STRING).
fn pkcs8_inner(der: &[u8]) -> Option<&[u8]> {
    let (_, seq, _) = tlv(der)?;
    let (_, _version, rest) = tlv(seq)?;
    let (_, _alg, rest) = tlv(rest)?;
    let (tag, key, _) = tlv(rest)?;
    (tag == 0x04).then_some(key)
}

/// Split a PKCS#1 RSAPublicKey DER (SEQUENCE { n INTEGER, e INTEGER }).
fn rsa_components(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (_, seq, _) = tlv(der)?;
    let (_, n, rest) = tlv(seq)?;
    let (_, e, _) = tlv(rest)?;
    let n = if n.first() == Some(&0) { &n[1..] } else { n };
    Some((n, e))
}

pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::RS256 => "RS256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        _ => "unsupported",
    }
}

/// Build one key from its stored record.
pub fn load(rec: &SigningKeyRecord) -> Result<OwnKey, KeyError> {
    let corrupt = |why: &str| KeyError::Corrupt {
        kid: rec.kid.clone(),
        why: why.into(),
    };
    let alg = crate::config::parse_algorithm(&rec.alg).ok_or_else(|| corrupt("unknown algorithm"))?;
    let mut jwk_value: serde_json::Value =
        serde_json::from_str(&rec.public_jwk).map_err(|_| corrupt("public JWK is not JSON"))?;
    let jwk: Jwk = serde_json::from_value(jwk_value.clone()).map_err(|_| corrupt("public JWK is not a JWK"))?;
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| corrupt("public JWK unusable"))?;
    let encoding = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_der(&rec.private_pkcs8_der),
        Algorithm::EdDSA => EncodingKey::from_ed_der(&rec.private_pkcs8_der),
        // jsonwebtoken wants PKCS#1 for RSA: unwrap the PKCS#8 envelope.
        Algorithm::RS256 => EncodingKey::from_rsa_der(
            pkcs8_inner(&rec.private_pkcs8_der).ok_or_else(|| corrupt("RSA key is not PKCS#8"))?,
        ),
        other => return Err(KeyError::Unsupported(other)),
    };
    if let Some(o) = jwk_value.as_object_mut() {
        o.insert("kid".into(), rec.kid.clone().into());
    }
    Ok(OwnKey {
        kid: rec.kid.as_str().into(),
        alg,
        encoding,
        decoding,
        jwk: jwk_value,
        created_at: rec.created_at,
        retired_at: rec.retired_at,
    })
}

impl KeySet {
    /// A set of one newly generated active key, kept nowhere: for tests,
    /// benchmarks and checks that need a signer without a store.
    pub fn generated(alg: Algorithm, now: i64) -> Result<KeySet, KeyError> {
        let k = generate(alg, now)?;
        let rec = SigningKeyRecord {
            kid: k.kid,
            alg: k.alg,
            private_pkcs8_der: k.private_pkcs8_der,
            public_jwk: k.public_jwk,
            created_at: k.created_at,
            retired_at: None,
        };
        KeySet::from_records(&[rec], now, 0)
    }

    /// Keys from the store, leaving out those retired longer ago than `grace`.
    pub fn from_records(recs: &[SigningKeyRecord], now: i64, grace_secs: i64) -> Result<KeySet, KeyError> {
        let mut set = KeySet::default();
        let mut newest_active: Option<Arc<OwnKey>> = None;
        for r in recs {
            if let Some(ret) = r.retired_at {
                if ret.saturating_add(grace_secs) < now {
                    continue;
                }
            }
            let k = Arc::new(load(r)?);
            if k.retired_at.is_none() && newest_active.as_ref().is_none_or(|a| a.created_at <= k.created_at) {
                newest_active = Some(k.clone());
            }
            set.by_kid.insert(k.kid.clone(), k);
        }
        set.active = newest_active;
        Ok(set)
    }

    /// The JWKS document of every key that still verifies.
    pub fn jwks(&self) -> serde_json::Value {
        let mut keys: Vec<&Arc<OwnKey>> = self.by_kid.values().collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        serde_json::json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SigningKeyRecord;

    fn rec(k: &NewSigningKey, retired: Option<i64>) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: k.kid.clone(),
            alg: k.alg.clone(),
            private_pkcs8_der: k.private_pkcs8_der.clone(),
            public_jwk: k.public_jwk.clone(),
            created_at: k.created_at,
            retired_at: retired,
        }
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
            let k = generate(alg, 100).unwrap();
            let set = KeySet::from_records(&[rec(&k, None)], 100, 10).unwrap();
            let key = set.active.clone().unwrap();
            let mut h = jsonwebtoken::Header::new(alg);
            h.kid = Some(key.kid.to_string());
            let t = jsonwebtoken::encode(&h, &serde_json::json!({"sub": "x"}), &key.encoding).unwrap();
            let mut v = jsonwebtoken::Validation::new(alg);
            v.required_spec_claims.clear();
            v.validate_exp = false;
            v.validate_aud = false;
            jsonwebtoken::decode::<serde_json::Value>(&t, &key.decoding, &v).unwrap();
        }
    }

    #[test]
    fn retired_keys_drop_out_after_grace() {
        let old = generate(Algorithm::ES256, 100).unwrap();
        let new = generate(Algorithm::ES256, 200).unwrap();
        let recs = [rec(&old, Some(200)), rec(&new, None)];
        let set = KeySet::from_records(&recs, 250, 100).unwrap();
        assert_eq!(set.by_kid.len(), 2);
        assert_eq!(set.active.as_ref().unwrap().kid.as_ref(), new.kid);
        let set = KeySet::from_records(&recs, 301, 100).unwrap();
        assert_eq!(set.by_kid.len(), 1);
        assert_eq!(set.jwks()["keys"].as_array().unwrap().len(), 1);
    }
}
