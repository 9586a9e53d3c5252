//! Credential actions on an in-memory SQLite store, inside a "replica"
//! (a revocation set, secret caches, a verifier), without a server.

use std::sync::Arc;

use super::*;
use crate::auth::keys::{self, KeySet};
use crate::store::{Kek, Principal};

pub(crate) struct Replica {
    pub cfg: Config,
    pub store: Arc<Store>,
    pub revocations: Arc<Revocations>,
    pub secrets: Secrets,
    pub verifier: Verifier,
}

impl Replica {
    /// A store with one signing key, and this replica's state over it.
    pub(crate) async fn new(extra_config: &str) -> Replica {
        let cfg = crate::config::from_str(&format!(
            "[scopes]\n\"tiles:read\" = \"r\"\n\"datasets:stream\" = \"s\"\n\"clients:manage\" = \"m\"\n{extra_config}"
        ))
        .unwrap();
        let store = Arc::new(Store::open("sqlite::memory:", 1, Kek::generate()).await.unwrap());
        store
            .insert_signing_key(&keys::generate(cfg.tokens.algorithm, now_unix()).unwrap())
            .await
            .unwrap();
        let grace = cfg.tokens.rotation_grace.as_secs() as i64;
        let keyset = KeySet::from_records(&store.signing_keys().await.unwrap(), now_unix(), grace).unwrap();
        let revocations = Arc::new(Revocations::new());
        let verifier = Verifier::new(&cfg, keyset, Some(store.clone()), revocations.clone());
        let secrets = Secrets::new(&cfg);
        Replica {
            cfg,
            store,
            revocations,
            secrets,
            verifier,
        }
    }

    pub(crate) fn op(&self) -> Op<'_> {
        let local = Local {
            revocations: &self.revocations,
            secrets: &self.secrets,
            verifier: &self.verifier,
        };
        Op::on(&self.store, &self.cfg, local, "test")
    }
}

/// Whether the replica's revocation set keeps `id` until exactly `until`:
/// a fold of the set at `until` keeps it, one a second later drops it.
/// (Folds drop expired entries: this ends the set's use in a test.)
fn kept_until(r: &Revocations, id: &str, until: i64) -> bool {
    r.merge(&[], until);
    let kept = r.is_revoked(None, Some(id));
    r.merge(&[], until + 1);
    kept && !r.is_revoked(None, Some(id))
}

/// The `until` the store recorded for `id`.
async fn stored_until(store: &Store, id: &str) -> Option<i64> {
    let all = store.list_revocations(now_unix()).await.unwrap();
    all.into_iter().find(|(i, _)| i == id).expect("revoked in the store").1
}

/// Organization `acme` and its service account `bot`.
async fn bot(op: &Op<'_>) -> crate::store::ServiceAccount {
    principals::create_org(op, "acme", None).await.unwrap();
    principals::create_service_account(op, "acme", "bot", None, &[])
        .await
        .unwrap()
}

/// [`bot`] and a `tiles:read` API key of it: the account, the key and the
/// key's text.
async fn bot_with_key(op: &Op<'_>) -> (crate::store::ServiceAccount, crate::store::ApiKey, String) {
    let sa = bot(op).await;
    let (key, text) = api_keys::create_api_key(
        op,
        &Principal::ServiceAccount(sa.id.clone()),
        "tiles:read",
        None,
        &[],
        None,
    )
    .await
    .unwrap();
    (sa, key, text)
}

#[tokio::test]
async fn revoking_an_api_key_records_its_expiry_here_as_in_the_store() {
    let r = Replica::new("").await;
    let op = r.op();
    let (_, key, text) = bot_with_key(&op).await;
    // Looked up once: now cached, unrevoked.
    let cached = r.secrets.api_key(&r.store, &text).await.unwrap().unwrap();
    assert!(cached.key.revoked_at.is_none());

    let before = now_unix();
    let revoked = api_keys::revoke_api_key(&op, &key.id).await.unwrap();
    let after = now_unix();
    assert!(revoked.revoked_at.is_some());

    // The entry outlives every token the key minted, in the store and
    // in this replica's set alike (never a for-good entry here).
    let until = stored_until(&r.store, &key.id)
        .await
        .expect("an API key's entry expires");
    assert!(
        (r.cfg.credential_revoked_until(before)..=r.cfg.credential_revoked_until(after)).contains(&until),
        "{until}"
    );
    // The cached secret was forgotten: the lookup reads the revoked key.
    let fresh = r.secrets.api_key(&r.store, &text).await.unwrap().unwrap();
    assert!(fresh.key.revoked_at.is_some());
    // Audited.
    let audit = r.store.list_audit(10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "api_key.revoked" && a.target == key.id),
        "{audit:?}"
    );
    assert!(kept_until(&r.revocations, &key.id, until));
    // A second revocation finds nothing to revoke.
    assert!(matches!(
        api_keys::revoke_api_key(&op, "key_missing").await,
        Err(CredentialError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_ceiling_change_whose_audit_fails_changes_nothing_and_still_forgets_cached_keys() {
    let r = Replica::new("").await;
    let op = r.op();
    let (sa, _, text) = bot_with_key(&op).await;
    let cached = r.secrets.api_key(&r.store, &text).await.unwrap().unwrap();
    // The audit log refuses every write.
    r.store
        .execute_for_tests(
            "CREATE TRIGGER audit_refused BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit refused'); END",
        )
        .await;
    let lowered = ceilings::CeilingPatch {
        tiles: Some(Some(crate::grants::GrantClaim {
            maxzoom: Some(4),
            ..Default::default()
        })),
        origins: None,
    };
    assert!(principals::set_service_account_grant(&op, &sa.id, &lowered)
        .await
        .is_err());
    // The change and its audit entry go together: neither was written.
    let stored = r.store.find_service_account(&sa.id).await.unwrap().unwrap();
    assert_eq!(stored.tiles, None);
    // And the cached key was forgotten all the same: read afresh.
    let fresh = r.secrets.api_key(&r.store, &text).await.unwrap().unwrap();
    assert!(!Arc::ptr_eq(&cached, &fresh));
    // The refusal was the audit log's: the same patch goes through, change
    // and entry, once the log takes writes again.
    r.store.execute_for_tests("DROP TRIGGER audit_refused").await;
    principals::set_service_account_grant(&op, &sa.id, &lowered)
        .await
        .unwrap();
    let stored = r.store.find_service_account(&sa.id).await.unwrap().unwrap();
    assert_eq!(stored.tiles.and_then(|t| t.maxzoom), Some(4));
}

#[tokio::test]
async fn an_empty_origin_limit_allows_no_origin_from_store_to_request() {
    let r = Replica::new("").await;
    let op = r.op();
    let sa = bot(&op).await;
    // An empty or blank stored limit (never written by the gateway) reads
    // as a list of no origins, not as any origin.
    for blank in ["", "  "] {
        r.store
            .execute_for_tests(&format!(
                "UPDATE service_accounts SET allowed_origins = '{blank}' WHERE id = '{}'",
                sa.id
            ))
            .await;
        let read = r.store.find_service_account(&sa.id).await.unwrap().unwrap();
        assert_eq!(read.allowed_origins, Some(vec![]), "{blank:?}");
    }
    // A token signed with it allows no origin on a route that binds them.
    let none: Vec<String> = Vec::new();
    let token = signing::TokenClaims::new(
        &r.cfg,
        "access",
        "sub",
        "jti-none",
        "tiles:read",
        now_unix(),
        Some(now_unix() + 60),
    )
    .origins(Some(&none))
    .sign(&r.verifier.keys())
    .unwrap();
    let v = r.verifier.verify(&token).await.unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::ORIGIN, "https://app.example.com".parse().unwrap());
    assert!(crate::auth::check_origin(true, false, &v, &headers).is_err());
}

#[tokio::test]
async fn regenerating_a_generator_token_revokes_the_old_one_for_good_and_forgets_it() {
    let r = Replica::new("").await;
    let op = r.op();
    principals::create_org(&op, "acme", None).await.unwrap();
    let u = principals::create_user(&op, "acme", "alice", Some("a long password"), None)
        .await
        .unwrap();
    let (old, old_text) = r.store.generator_token(&u.uid).await.unwrap().unwrap();
    assert!(r.secrets.generator(&r.store, &old_text).await.unwrap().is_some());

    let (new, new_text) = named::regenerate(&op, &u.uid).await.unwrap();
    assert_ne!(new.id, old.id);
    assert_ne!(new_text, old_text);
    assert_eq!(
        stored_until(&r.store, &old.id).await,
        None,
        "revoked for good in the store"
    );
    r.revocations.merge(&[], i64::MAX);
    assert!(r.revocations.is_revoked(None, Some(&old.id)), "and here");
    assert!(!r.revocations.is_revoked(None, Some(&new.id)));
    // The old text is no longer served from the cache.
    assert!(r.secrets.generator(&r.store, &old_text).await.unwrap().is_none());
    assert!(r.secrets.generator(&r.store, &new_text).await.unwrap().is_some());
}

#[tokio::test]
async fn the_cli_records_the_same_revocation_without_a_replica() {
    let r = Replica::new("").await;
    let cli = Op::cli(&r.store, &r.cfg, "cli");
    principals::create_org(&cli, "acme", None).await.unwrap();
    let sa = principals::create_service_account(&cli, "acme", "bot", None, &[])
        .await
        .unwrap();
    let (key, _) = api_keys::create_api_key(&cli, &Principal::ServiceAccount(sa.id), "tiles:read", None, &[], None)
        .await
        .unwrap();
    let before = now_unix();
    api_keys::revoke_api_key(&cli, &key.id).await.unwrap();
    let until = stored_until(&r.store, &key.id).await.unwrap();
    assert!(until >= r.cfg.credential_revoked_until(before));
    assert!(r.revocations.is_empty(), "no replica state is touched");
}

#[tokio::test]
async fn refusals_are_facts() {
    let r = Replica::new("").await;
    let op = r.op();
    let sa = bot(&op).await;
    let p = Principal::ServiceAccount(sa.id);
    let e = api_keys::create_api_key(&op, &p, "tiles:nope", None, &[], None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CredentialError::UndeclaredScope { scope } if scope == "tiles:nope"),
        "{e}"
    );
    let e = api_keys::create_api_key(&op, &p, " ", None, &[], None)
        .await
        .unwrap_err();
    assert!(matches!(e, CredentialError::NoScope), "{e}");
    // clients:manage is beyond every default ceiling.
    let e = api_keys::create_api_key(&op, &p, "clients:manage", None, &[], None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CredentialError::ScopeNotAllowed { scope, .. } if scope == "clients:manage"),
        "{e}"
    );
    assert!(matches!(
        api_keys::parse_expiry("soon"),
        Err(CredentialError::BadExpiry(_))
    ));
    assert!(matches!(
        principals::reset_password(&op, "nobody", "short").await,
        Err(CredentialError::PasswordLength)
    ));
    assert!(matches!(
        principals::user(&r.store, "nobody").await,
        Err(CredentialError::NotFound(m)) if m == "no user nobody"
    ));
}

#[tokio::test]
async fn an_org_name_is_taken_once_and_never_names_another_orgs_id() {
    let r = Replica::new("").await;
    let op = r.op();
    let acme = principals::create_org(&op, "acme", None).await.unwrap();
    let e = principals::create_org(&op, "acme", None).await.unwrap_err();
    assert!(
        matches!(&e, CredentialError::Conflict(m) if m.contains("named acme already exists") && m.contains(&acme.id)),
        "{e}"
    );
    let e = principals::create_org(&op, &acme.id, None).await.unwrap_err();
    assert!(
        matches!(&e, CredentialError::Conflict(m) if m.contains("is the id of")),
        "{e}"
    );
    assert_eq!(r.store.list_orgs().await.unwrap().len(), 1, "nothing was created");
}
