//! One suite, run against SQLite (a temporary file, always) and PostgreSQL
//! (a fresh database per test on the server named by
//! `TILEGATE_TEST_PG_URL`; skipped when unset, failing when `CI` is set).

use super::crypto::random_id;
use super::migrate::{BoxDynError, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
use super::*;
use sqlx::any::AnyRow;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{Column, Connection, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

const PG_ENV: &str = "TILEGATE_TEST_PG_URL";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
}

/// What a test gets besides the store: the URL and KEK to open more
/// `Store` objects on the same database.
struct Ctx {
    url: String,
    kek: Kek,
}

impl Ctx {
    async fn open_again(&self) -> Store {
        Store::open(&self.url, 2, self.kek.clone()).await.expect("reopen store")
    }
}

enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

fn pg_admin_url() -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_string()),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("{PG_ENV} must be set when CI is set (see .ci/pg.sh)");
            }
            println!("skipped: {PG_ENV} unset");
            None
        }
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    format!("{root}/{name}{query}")
}

async fn setup(kind: Kind) -> Option<(String, TestDb)> {
    match kind {
        Kind::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            // A nested, missing directory: open must create it.
            let url = format!("sqlite://{}/nested/dir/store.db", dir.path().display());
            Some((url, TestDb::Sqlite(dir)))
        }
        Kind::Postgres => {
            let admin_url = pg_admin_url()?;
            let name = format!("tg_test_{}", &random_id("")[..16]);
            let mut conn = sqlx::postgres::PgConnection::connect(&admin_url)
                .await
                .expect("connect to TILEGATE_TEST_PG_URL");
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .expect("CREATE DATABASE (the role needs CREATEDB)");
            conn.close().await.ok();
            Some((with_database(&admin_url, &name), TestDb::Postgres { admin_url, name }))
        }
    }
}

async fn teardown(db: TestDb) {
    if let TestDb::Postgres { admin_url, name } = db {
        // Best effort: cleanup is not what the tests assert. FORCE cannot
        // end a backend of another role (autovacuum on the fresh database,
        // say), so retry briefly, then leave the database behind with a note.
        let Ok(mut conn) = sqlx::postgres::PgConnection::connect(&admin_url).await else {
            eprintln!("note: could not connect to drop {name}");
            return;
        };
        for attempt in 0..10 {
            match conn
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
            {
                Ok(_) => break,
                Err(e) if attempt == 9 => eprintln!("note: {name} left behind: {e}"),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
        conn.close().await.ok();
    }
}

/// Runs `test` on a fresh store of `kind`, then cleans up, even when the
/// test panics (the panic is re-raised afterwards).
async fn run<F, Fut>(kind: Kind, test: F)
where
    F: FnOnce(Store, Ctx) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some((url, db)) = setup(kind).await else {
        return;
    };
    let kek = Kek::generate();
    let store = match Store::open(&url, 4, kek.clone()).await {
        Ok(s) => s,
        Err(e) => {
            teardown(db).await;
            panic!("open store: {e}");
        }
    };
    assert_eq!(
        store.backend(),
        match kind {
            Kind::Sqlite => Backend::Sqlite,
            Kind::Postgres => Backend::Postgres,
        }
    );
    let result = tokio::spawn(test(store.clone(), Ctx { url, kek })).await;
    store.close().await;
    teardown(db).await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::run(super::Kind::Sqlite, super::$name).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::run(super::Kind::Postgres, super::$name).await
            }
        }
    )*};
}

both!(
    basics,
    orgs_users_service_accounts,
    username_conflict_is_atomic,
    passwords,
    api_keys,
    generator_tokens,
    clients,
    assertion_jtis,
    named_tokens,
    revocations,
    signing_keys,
    audit_log,
    concurrent_writes,
    listen_notify,
    wrong_kek_and_reopen,
    closed_store_is_unavailable,
    ceilings_and_containment,
    deletions,
    credential_grants,
);

fn scopes(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Every column of every row of `table`, as text, for "no secret at rest" checks.
async fn dump_table(store: &Store, table: &str) -> String {
    let rows = sqlx::query(&format!("SELECT * FROM {table}"))
        .fetch_all(store.pool())
        .await
        .expect("dump table");
    let mut out = String::new();
    for row in &rows {
        for (i, col) in row.columns().iter().enumerate() {
            let text = match row.try_get::<Option<String>, _>(i) {
                Ok(v) => v.unwrap_or_default(),
                Err(_) => row
                    .try_get::<Option<i64>, _>(i)
                    .ok()
                    .flatten()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            };
            out.push_str(&format!("{}={text}\n", col.name()));
        }
    }
    out
}

async fn count(store: &Store, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(store.pool())
        .await
        .expect("count")
}

async fn org_and_user(s: &Store, username: &str) -> (Org, User) {
    let org = s
        .create_org(&format!("org-of-{username}"), crate::clock::now_unix())
        .await
        .unwrap();
    let user = s
        .create_user(&org.id, username, Some("correct horse"), crate::clock::now_unix())
        .await
        .unwrap();
    (org, user)
}

// -------------------------------------------------------------------- tests

async fn basics(s: Store, ctx: Ctx) {
    s.ping().await.unwrap();
    if s.backend() == Backend::Sqlite {
        let path = ctx.url.trim_start_matches("sqlite://");
        assert!(std::path::Path::new(path).exists(), "sqlite file created");
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }
    assert!(format!("{s:?}").contains("backend"));
}

async fn orgs_users_service_accounts(s: Store, _ctx: Ctx) {
    // Creation times are the caller's `now`, not the store's clock.
    let acme = s.create_org("acme", 1_700_000_000).await.unwrap();
    assert_eq!(acme.created_at, 1_700_000_000);
    assert!(acme.id.starts_with("org_") && acme.id.len() == 4 + 32);
    assert!(matches!(
        s.create_org("acme", crate::clock::now_unix()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_org("", crate::clock::now_unix()).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.create_org("bad\nname", crate::clock::now_unix()).await,
        Err(StoreError::Invalid(_))
    ));
    let other = s.create_org("other", crate::clock::now_unix()).await.unwrap();
    assert_eq!(s.find_org(&acme.id).await.unwrap(), Some(acme.clone()));
    assert_eq!(s.find_org("acme").await.unwrap(), Some(acme.clone()));
    assert_eq!(s.find_org("nope").await.unwrap(), None);
    assert_eq!(s.list_orgs().await.unwrap().len(), 2);

    let alice = s
        .create_user(&acme.id, "alice", Some("pw-alice"), crate::clock::now_unix())
        .await
        .unwrap();
    assert!(alice.uid.starts_with("usr_"));
    assert_eq!(alice.org_id, acme.id);
    assert_eq!(s.find_user(&alice.uid).await.unwrap(), Some(alice.clone()));
    assert_eq!(s.find_user("alice").await.unwrap(), Some(alice.clone()));
    assert_eq!(s.find_user("bob").await.unwrap(), None);
    let bob = s
        .create_user(&other.id, "bob", None, crate::clock::now_unix())
        .await
        .unwrap();
    assert_eq!(s.list_users(Some(&acme.id)).await.unwrap(), vec![alice.clone()]);
    assert_eq!(s.list_users(None).await.unwrap().len(), 2);
    assert!(matches!(
        s.create_user("org_missing", "carol", None, crate::clock::now_unix())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.create_user(&acme.id, "dave", Some(""), crate::clock::now_unix())
            .await,
        Err(StoreError::Invalid(_))
    ));
    // Each user gets an access-generator token with the user.
    assert!(s.generator_token(&alice.uid).await.unwrap().is_some());
    assert!(s.generator_token(&bob.uid).await.unwrap().is_some());
    // A username that looks like someone's uid never shadows that uid.
    let tricky = s
        .create_user(&acme.id, &bob.uid, None, crate::clock::now_unix())
        .await
        .unwrap();
    assert_eq!(s.find_user(&bob.uid).await.unwrap(), Some(bob.clone()));
    assert_ne!(tricky.uid, bob.uid);

    let sa = s
        .create_service_account(&acme.id, "ci-bot", crate::clock::now_unix())
        .await
        .unwrap();
    assert!(sa.id.starts_with("sa_"));
    assert_eq!(s.find_service_account(&sa.id).await.unwrap(), Some(sa.clone()));
    assert_eq!(s.find_service_account("sa_missing").await.unwrap(), None);
    assert_eq!(s.list_service_accounts(Some(&acme.id)).await.unwrap(), vec![sa.clone()]);
    assert!(s.list_service_accounts(Some(&other.id)).await.unwrap().is_empty());
    assert!(matches!(
        s.create_service_account("org_missing", "x", crate::clock::now_unix())
            .await,
        Err(StoreError::NotFound(_))
    ));
    let json = serde_json::to_string(&(acme, alice, sa)).unwrap();
    assert!(json.contains("\"username\":\"alice\""));
}

async fn username_conflict_is_atomic(s: Store, _ctx: Ctx) {
    let (_org, _alice) = org_and_user(&s, "alice").await;
    let other = s.create_org("other", crate::clock::now_unix()).await.unwrap();
    let users = count(&s, "users").await;
    let gens = count(&s, "generator_tokens").await;
    let err = s
        .create_user(&other.id, "alice", Some("x"), crate::clock::now_unix())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(ref m) if m.contains("username")));
    assert_eq!(count(&s, "users").await, users);
    assert_eq!(count(&s, "generator_tokens").await, gens);
    assert_eq!(users, 1);
    assert_eq!(gens, 1);
}

async fn passwords(s: Store, _ctx: Ctx) {
    let (org, alice) = org_and_user(&s, "alice").await;
    let nopw = s
        .create_user(&org.id, "nopw", None, crate::clock::now_unix())
        .await
        .unwrap();
    assert_eq!(
        s.verify_password("alice", "correct horse").await.unwrap(),
        Some(alice.clone())
    );
    let t = Instant::now();
    assert_eq!(s.verify_password("alice", "wrong").await.unwrap(), None);
    let wrong = t.elapsed();
    let t = Instant::now();
    assert_eq!(s.verify_password("nobody", "wrong").await.unwrap(), None);
    let unknown = t.elapsed();
    assert_eq!(s.verify_password(&nopw.username, "").await.unwrap(), None);
    assert_eq!(s.verify_password("alice", "").await.unwrap(), None);
    // The unknown user also pays for an argon2 verification (loose bound:
    // the machine is shared).
    assert!(
        unknown * 5 >= wrong,
        "unknown user answered suspiciously fast: {unknown:?} vs {wrong:?}"
    );
    // Stored as an argon2id PHC string, never the password.
    let raw = dump_table(&s, "users").await;
    assert!(raw.contains("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert!(!raw.contains("correct horse"));
}

async fn api_keys(s: Store, _ctx: Ctx) {
    let (org, alice) = org_and_user(&s, "alice").await;
    let sa = s
        .create_service_account(&org.id, "bot", crate::clock::now_unix())
        .await
        .unwrap();
    let now = crate::clock::now_unix();
    let (key, plain) = s
        .create_api_key(
            &Principal::ServiceAccount(sa.id.clone()),
            &scopes(&["tiles:read", "datasets:stream", "tiles:read"]),
            Some(now + 3600),
            crate::clock::now_unix(),
        )
        .await
        .unwrap();
    // Format: tgk_ + base64url(32 bytes) without padding.
    assert!(plain.starts_with("tgk_"));
    assert_eq!(plain.len(), 4 + 43);
    assert!(plain[4..]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert!(key.id.starts_with("key_"));
    assert_eq!(key.prefix, plain[4..12]);
    assert_eq!(key.org_id, org.id);
    assert_eq!(key.scopes, scopes(&["tiles:read", "datasets:stream"]));
    assert_eq!(key.expires_at, Some(now + 3600));
    assert!(key.is_active(now));
    assert!(!key.is_active(now + 3600));

    assert_eq!(s.lookup_api_key(&plain).await.unwrap(), Some(key.clone()));
    let mut tampered = plain.clone();
    tampered.pop();
    tampered.push(if plain.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(s.lookup_api_key(&tampered).await.unwrap(), None);
    assert_eq!(s.lookup_api_key("").await.unwrap(), None);
    assert_eq!(s.lookup_api_key(&plain[4..]).await.unwrap(), None);
    assert_eq!(s.lookup_api_key(&"tgk_x".repeat(1000)).await.unwrap(), None);

    let (ukey, uplain) = s
        .create_api_key(&Principal::User(alice.uid.clone()), &[], None, crate::clock::now_unix())
        .await
        .unwrap();
    assert_eq!(ukey.principal, Principal::User(alice.uid.clone()));
    assert!(ukey.scopes.is_empty());
    assert_ne!(plain, uplain);

    // No plaintext at rest; the lookup hash is sha256 hex.
    let raw = dump_table(&s, "api_keys").await;
    for p in [&plain, &uplain] {
        assert!(!raw.contains(p.as_str()));
        assert!(!raw.contains(&p[4..]));
        assert!(raw.contains(&sha256_hex(p)));
    }

    let mut listed = s.list_api_keys(Some(&org.id)).await.unwrap();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected = vec![key.clone(), ukey.clone()];
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(listed, expected);
    assert!(s.list_api_keys(Some("org_other")).await.unwrap().is_empty());
    assert_eq!(s.list_api_keys(None).await.unwrap().len(), 2);
    let json = serde_json::to_string(&listed).unwrap();
    assert!(!json.contains(&plain[4..]) && !json.contains(&sha256_hex(&plain)));
    assert!(json.contains("\"principal\":{\"kind\":\"service_account\""));

    s.touch_api_key(&key.id, now + 5).await.unwrap();
    s.touch_api_key(&key.id, now + 1).await.unwrap(); // never backwards
    s.touch_api_key("key_missing", now).await.unwrap();
    assert_eq!(
        s.lookup_api_key(&plain).await.unwrap().unwrap().last_used_at,
        Some(now + 5)
    );

    let revoked = s.revoke_api_key(&key.id, now + 10).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(now + 10));
    let again = s.revoke_api_key(&key.id, now + 20).await.unwrap().unwrap();
    assert_eq!(again.revoked_at, Some(now + 10), "idempotent");
    assert_eq!(s.revoke_api_key("key_missing", now).await.unwrap(), None);
    let found = s.lookup_api_key(&plain).await.unwrap().unwrap();
    assert_eq!(found.revoked_at, Some(now + 10));
    assert!(!found.is_active(now + 11));

    assert!(matches!(
        s.create_api_key(
            &Principal::User("usr_missing".into()),
            &[],
            None,
            crate::clock::now_unix()
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.create_api_key(
            &Principal::ServiceAccount(sa.id.clone()),
            &scopes(&["bad scope"]),
            None,
            crate::clock::now_unix()
        )
        .await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(count(&s, "api_keys").await, 2);
}

async fn generator_tokens(s: Store, _ctx: Ctx) {
    let (org, alice) = org_and_user(&s, "alice").await;
    let (gen, plain) = s.generator_token(&alice.uid).await.unwrap().unwrap();
    assert!(gen.id.starts_with("gen_"));
    assert!(plain.starts_with("tgg_") && plain.len() == 4 + 43);
    assert_eq!(gen.uid, alice.uid);
    assert_eq!(gen.org_id, org.id);
    assert_eq!(gen.username, "alice");
    assert_eq!(s.lookup_generator_token(&plain).await.unwrap(), Some(gen.clone()));
    assert_eq!(s.lookup_generator_token("tgg_nope").await.unwrap(), None);
    assert_eq!(s.generator_token("usr_missing").await.unwrap(), None);

    // Encrypted at rest, looked up by hash.
    let raw = dump_table(&s, "generator_tokens").await;
    assert!(!raw.contains(&plain[4..]));
    assert!(raw.contains(&sha256_hex(&plain)));

    let now = crate::clock::now_unix() + 100;
    let (gen2, plain2, old) = s.regenerate_generator_token(&alice.uid, now).await.unwrap();
    assert_eq!(old.as_deref(), Some(gen.id.as_str()));
    assert_ne!(gen2.id, gen.id);
    assert_ne!(plain2, plain);
    assert_eq!(gen2.created_at, now);
    assert_eq!(s.lookup_generator_token(&plain).await.unwrap(), None);
    assert_eq!(s.lookup_generator_token(&plain2).await.unwrap(), Some(gen2.clone()));
    assert_eq!(
        s.generator_token(&alice.uid).await.unwrap(),
        Some((gen2.clone(), plain2.clone()))
    );
    assert_eq!(count(&s, "generator_tokens").await, 1);
    assert!(matches!(
        s.regenerate_generator_token("usr_missing", now).await,
        Err(StoreError::NotFound(_))
    ));

    // Concurrent regenerations serialise: exactly one token remains and it works.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = s.clone();
        let uid = alice.uid.clone();
        tasks.push(tokio::spawn(async move {
            s.regenerate_generator_token(&uid, now + 1).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(count(&s, "generator_tokens").await, 1);
    let (last, last_plain) = s.generator_token(&alice.uid).await.unwrap().unwrap();
    assert_eq!(s.lookup_generator_token(&last_plain).await.unwrap(), Some(last));
}

async fn clients(s: Store, _ctx: Ctx) {
    let (org, alice) = org_and_user(&s, "alice").await;
    let bob = s
        .create_user(&org.id, "bob", None, crate::clock::now_unix())
        .await
        .unwrap();
    let (client, secret) = s
        .create_client(
            &alice.uid,
            Some("my app"),
            &scopes(&["tiles:read"]),
            crate::clock::now_unix(),
        )
        .await
        .unwrap();
    assert!(client.client_id.starts_with("tgc_") && client.client_id.len() == 4 + 22);
    assert!(secret.starts_with("tgs_") && secret.len() == 4 + 43);
    assert_eq!(client.org_id, org.id);
    assert_eq!(client.owner_uid, alice.uid);
    assert_eq!(client.name.as_deref(), Some("my app"));
    assert_eq!(client.scopes, scopes(&["tiles:read"]));

    let enc: String = sqlx::query_scalar("SELECT secret_enc FROM clients WHERE client_id = $1")
        .bind(&client.client_id)
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_ne!(enc, secret);
    assert!(!enc.contains(&secret[4..]));
    assert!(!dump_table(&s, "clients").await.contains(&secret[4..]));

    let (found, bytes) = s.client_with_secret(&client.client_id).await.unwrap().unwrap();
    assert_eq!(found, client);
    assert_eq!(bytes, secret.as_bytes());
    assert_eq!(s.client_with_secret("tgc_missing").await.unwrap(), None);

    let (client2, _) = s
        .create_client(&bob.uid, None, &[], crate::clock::now_unix())
        .await
        .unwrap();
    assert_eq!(client2.name, None);
    assert_eq!(s.list_clients(Some(&alice.uid)).await.unwrap(), vec![client.clone()]);
    assert_eq!(s.list_clients(None).await.unwrap().len(), 2);
    let json = serde_json::to_string(&s.list_clients(None).await.unwrap()).unwrap();
    assert!(!json.contains(&secret[4..]));

    assert!(s
        .use_assertion_jti(
            &client.client_id,
            "j1",
            crate::clock::now_unix() + 60,
            crate::clock::now_unix()
        )
        .await
        .unwrap());
    assert!(!s.delete_client(&client.client_id, Some(&bob.uid)).await.unwrap());
    assert!(s.delete_client(&client.client_id, Some(&alice.uid)).await.unwrap());
    assert!(!s.delete_client(&client.client_id, Some(&alice.uid)).await.unwrap());
    assert_eq!(s.client_with_secret(&client.client_id).await.unwrap(), None);
    assert_eq!(count(&s, "assertion_jtis").await, 0);
    assert!(s.delete_client(&client2.client_id, None).await.unwrap());
    assert!(matches!(
        s.create_client("usr_missing", None, &[], crate::clock::now_unix())
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn assertion_jtis(s: Store, _ctx: Ctx) {
    let now = crate::clock::now_unix();
    assert!(s.use_assertion_jti("tgc_a", "jti-1", now + 60, now).await.unwrap());
    assert!(!s.use_assertion_jti("tgc_a", "jti-1", now + 60, now).await.unwrap());
    assert!(!s.use_assertion_jti("tgc_a", "jti-1", now + 60, now + 30).await.unwrap());
    assert!(s.use_assertion_jti("tgc_b", "jti-1", now + 60, now).await.unwrap());
    assert!(matches!(
        s.use_assertion_jti("tgc_a", "", now, now).await,
        Err(StoreError::Invalid(_))
    ));
    // Concurrent replays: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.use_assertion_jti("tgc_c", "race", now + 60, now).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    // Purging (every 64th call) drops rows more than 5 minutes past exp only.
    for i in 0..70 {
        s.use_assertion_jti("tgc_p", &format!("p{i}"), now - 1000, now)
            .await
            .unwrap();
    }
    s.use_assertion_jti("tgc_p", "recent", now - 10, now).await.unwrap();
    for i in 0..70 {
        s.use_assertion_jti("tgc_q", &format!("q{i}"), now + 60, now)
            .await
            .unwrap();
    }
    let old: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM assertion_jtis WHERE exp < $1")
        .bind(now - 300)
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert!(old < 70, "expired jtis are purged");
    assert!(!s.use_assertion_jti("tgc_p", "recent", now - 10, now).await.unwrap());
}

fn named(id: &str, uid: &str, org_id: &str, expires_at: Option<i64>) -> NamedToken {
    NamedToken {
        id: id.to_string(),
        uid: uid.to_string(),
        org_id: org_id.to_string(),
        generator_id: "gen_x".to_string(),
        name: format!("token {id}"),
        action: "read_only".to_string(),
        resource_type: "all".to_string(),
        scopes: scopes(&["tiles:read"]),
        created_at: 1_000,
        expires_at,
        revoked_at: None,
        tiles: None,
    }
}

/// Tile-grant ceilings and allowed origins on service accounts (read with
/// the principal's limits) and clients, and the grant of a named token,
/// stored and read back; clearing them stores `NULL`.
async fn credential_grants(s: Store, _ctx: Ctx) {
    let (org, alice) = org_and_user(&s, "alice").await;
    let tiles: crate::grants::GrantClaim =
        serde_json::from_str(r#"{"minzoom":2,"maxzoom":6,"bounds":[[5,44,17,48]],"layers":["basemap"]}"#).unwrap();
    let origins = scopes(&["https://app.example.com", "https://*.example.org"]);
    let now = crate::clock::now_unix();
    let sa = s
        .create_service_account_limited(&org.id, "bot", Some(&tiles), Some(&origins), now)
        .await
        .unwrap();
    assert_eq!(sa.tiles.as_ref(), Some(&tiles));
    assert_eq!(s.find_service_account(&sa.id).await.unwrap(), Some(sa.clone()));
    assert_eq!(s.list_service_accounts(Some(&org.id)).await.unwrap(), vec![sa.clone()]);
    let l = s
        .principal_limits(&Principal::ServiceAccount(sa.id.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (l.tiles.as_ref(), l.allowed_origins.as_ref()),
        (Some(&tiles), Some(&origins))
    );
    // Each change is written with its audit entry (none for no record).
    let note = AuditNote {
        actor: "test",
        action: "grant_set",
        detail: "tiles=- origins=unchanged",
        now,
    };
    // One dimension changed leaves the other as it was.
    let kept = s
        .set_service_account_limits(&sa.id, Some(None), None, &note)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (kept.tiles.as_ref(), kept.allowed_origins.as_ref()),
        (None, Some(&origins))
    );
    let unchanged = s
        .set_service_account_limits(&sa.id, None, None, &note)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged, kept);
    let cleared = s
        .set_service_account_limits(&sa.id, None, Some(None), &note)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((cleared.tiles, cleared.allowed_origins), (None, None));
    let l = s
        .principal_limits(&Principal::ServiceAccount(sa.id.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((l.tiles, l.allowed_origins), (None, None));
    let ul = s
        .principal_limits(&Principal::User(alice.uid.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((ul.tiles, ul.allowed_origins), (None, None));
    async fn audited(s: &Store) -> Vec<String> {
        let all = s.list_audit(100).await.unwrap();
        all.into_iter()
            .filter(|a| a.action == "grant_set")
            .map(|a| a.target)
            .collect()
    }
    assert_eq!(audited(&s).await, vec![sa.id.clone(); 3]);
    assert_eq!(
        s.set_service_account_limits("sa_none", None, None, &note)
            .await
            .unwrap(),
        None
    );
    assert_eq!(audited(&s).await.len(), 3);

    let (client, _) = s
        .create_client(&alice.uid, None, &scopes(&["tiles:read"]), now)
        .await
        .unwrap();
    assert_eq!((client.tiles.as_ref(), client.allowed_origins.as_ref()), (None, None));
    let limited = s
        .set_client_limits(&client.client_id, Some(Some(&tiles)), Some(Some(&origins[..])), &note)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(limited.tiles.as_ref(), Some(&tiles));
    assert_eq!(limited.allowed_origins.as_ref(), Some(&origins));
    let (read, _) = s.client_with_secret(&client.client_id).await.unwrap().unwrap();
    assert_eq!(read, limited);
    assert_eq!(s.list_clients(Some(&alice.uid)).await.unwrap(), vec![limited.clone()]);
    assert_eq!(s.set_client_limits("tgc_none", None, None, &note).await.unwrap(), None);

    let mut t = named("ntk_grant", &alice.uid, &org.id, None);
    t.tiles = Some(tiles.clone());
    s.insert_named_token(&t).await.unwrap();
    assert_eq!(s.list_named_tokens(Some(&alice.uid)).await.unwrap(), vec![t]);
}

async fn named_tokens(s: Store, _ctx: Ctx) {
    let (org, alice) = org_and_user(&s, "alice").await;
    let bob = s
        .create_user(&org.id, "bob", None, crate::clock::now_unix())
        .await
        .unwrap();
    let now = crate::clock::now_unix();
    let a1 = named("jti-a1", &alice.uid, &org.id, Some(now + 600));
    let a2 = named("jti-a2", &alice.uid, &org.id, None);
    let b1 = named("jti-b1", &bob.uid, &org.id, Some(now + 60));
    for t in [&a1, &a2, &b1] {
        s.insert_named_token(t).await.unwrap();
    }
    assert!(matches!(s.insert_named_token(&a1).await, Err(StoreError::Conflict(_))));
    assert!(matches!(
        s.insert_named_token(&named("jti-x", "usr_missing", &org.id, None))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.list_named_tokens(Some(&alice.uid)).await.unwrap(),
        vec![a1.clone(), a2.clone()]
    );
    assert_eq!(s.list_named_tokens(None).await.unwrap().len(), 3);
    assert_eq!(s.find_named_token("jti-b1").await.unwrap(), Some(b1.clone()));
    assert_eq!(s.find_named_token("jti-none").await.unwrap(), None);

    // Only the owner can revoke (when an owner is given).
    assert_eq!(s.revoke_named_token("jti-a1", Some(&bob.uid), now).await.unwrap(), None);
    assert_eq!(s.find_named_token("jti-a1").await.unwrap().unwrap().revoked_at, None);
    assert!(s.list_revocations(now).await.unwrap().is_empty());
    let r = s
        .revoke_named_token("jti-a1", Some(&alice.uid), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.revoked_at, Some(now));
    assert!(!r.is_active(now));
    let again = s
        .revoke_named_token("jti-a1", Some(&alice.uid), now + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at, Some(now));
    // Admin revocation (no owner filter) of a never-expiring token.
    s.revoke_named_token("jti-a2", None, now).await.unwrap().unwrap();
    assert_eq!(s.revoke_named_token("jti-none", None, now).await.unwrap(), None);
    // Revoking also feeds the revocation list, until the token's expiry.
    assert_eq!(
        s.list_revocations(now).await.unwrap(),
        vec![("jti-a1".to_string(), Some(now + 600)), ("jti-a2".to_string(), None)]
    );
    assert!(s.find_named_token("jti-b1").await.unwrap().unwrap().is_active(now));
}

async fn revocations(s: Store, _ctx: Ctx) {
    let now = crate::clock::now_unix();
    s.add_revocation("a", Some(now + 100), now).await.unwrap();
    s.add_revocation("b", Some(now - 1), now).await.unwrap();
    s.add_revocation("c", None, now).await.unwrap();
    s.add_revocation("d", Some(now), now).await.unwrap();
    assert_eq!(
        s.list_revocations(now).await.unwrap(),
        vec![
            ("a".to_string(), Some(now + 100)),
            ("c".to_string(), None),
            ("d".to_string(), Some(now))
        ]
    );
    // Upserts: a later until wins, an earlier one does not shrink, None is forever.
    s.add_revocation("a", Some(now + 50), now).await.unwrap();
    s.add_revocation("d", Some(now + 200), now).await.unwrap();
    s.add_revocation("c", Some(now + 1), now).await.unwrap();
    assert_eq!(
        s.list_revocations(now).await.unwrap(),
        vec![
            ("a".to_string(), Some(now + 100)),
            ("c".to_string(), None),
            ("d".to_string(), Some(now + 200))
        ]
    );
    s.add_revocation("a", None, now).await.unwrap();
    let later = s.list_revocations(now + 150).await.unwrap();
    assert_eq!(
        later,
        vec![
            ("a".to_string(), None),
            ("c".to_string(), None),
            ("d".to_string(), Some(now + 200))
        ]
    );
    // Expired rows were purged by the listing.
    assert_eq!(count(&s, "revocations").await, 3);
    assert!(matches!(
        s.add_revocation("", None, now).await,
        Err(StoreError::Invalid(_))
    ));
}

fn new_key(kid: &str, created_at: i64) -> NewSigningKey {
    NewSigningKey {
        kid: kid.to_string(),
        alg: "ES256".to_string(),
        private_pkcs8_der: format!("private-der-of-{kid}").into_bytes(),
        public_jwk: format!(r#"{{"kty":"EC","kid":"{kid}"}}"#),
        created_at,
    }
}

async fn signing_keys(s: Store, _ctx: Ctx) {
    assert!(s.signing_keys().await.unwrap().is_empty());
    assert_eq!(s.active_signing_key().await.unwrap(), None);
    let k1 = new_key("k1", 100);
    s.insert_signing_key(&k1).await.unwrap();
    let keys = s.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].private_pkcs8_der, k1.private_pkcs8_der);
    assert_eq!(keys[0].public_jwk, k1.public_jwk);
    assert_eq!(keys[0].retired_at, None);

    let k2 = new_key("k2", 200);
    s.insert_signing_key(&k2).await.unwrap();
    let keys = s.signing_keys().await.unwrap();
    assert_eq!(
        keys.iter().map(|k| (k.kid.as_str(), k.retired_at)).collect::<Vec<_>>(),
        vec![("k2", None), ("k1", Some(200))]
    );
    assert_eq!(s.active_signing_key().await.unwrap().unwrap().kid, "k2");
    assert_eq!(keys[1].private_pkcs8_der, k1.private_pkcs8_der);

    // A duplicate kid is refused and changes nothing (k2 stays active).
    assert!(matches!(
        s.insert_signing_key(&new_key("k1", 300)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.active_signing_key().await.unwrap().unwrap().kid, "k2");
    assert_eq!(s.signing_keys().await.unwrap()[0].retired_at, None);

    // Private keys are encrypted at rest and never printed.
    let raw = dump_table(&s, "signing_keys").await;
    assert!(!raw.contains("private-der-of"));
    let printed = format!("{:?} {:?}", keys, k1);
    assert!(!printed.contains("112, 114, 105") && printed.contains("redacted"));
    let json = serde_json::to_string(&keys).unwrap();
    assert!(!json.contains("private"));
}

async fn audit_log(s: Store, _ctx: Ctx) {
    assert!(s.list_audit(10).await.unwrap().is_empty());
    s.audit("admin", "org.create", "org_1", "name=acme", 10).await.unwrap();
    s.audit("admin", "api_key.create", "key_1", "scopes=tiles:read", 11)
        .await
        .unwrap();
    s.audit("cli", "api_key.revoke", "key_1", "", 12).await.unwrap();
    let entries = s.list_audit(2).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].action, "api_key.revoke");
    assert_eq!(entries[0].actor, "cli");
    assert_eq!(entries[0].created_at, 12);
    assert_eq!(entries[1].target, "key_1");
    assert!(entries[0].id > entries[1].id);
    assert_eq!(s.list_audit(100).await.unwrap().len(), 3);
    assert_eq!(s.list_audit(0).await.unwrap().len(), 1);
}

async fn concurrent_writes(s: Store, ctx: Ctx) {
    // Two Store objects (two pools) on one database, writing at once.
    let other = ctx.open_again().await;
    let now = crate::clock::now_unix();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let st = if i % 2 == 0 { s.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            st.add_revocation(&format!("r{i}"), Some(now + 60), now).await?;
            st.audit("t", "write", &format!("r{i}"), "", now).await?;
            st.create_org(&format!("org{i}"), crate::clock::now_unix())
                .await
                .map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.list_revocations(now).await.unwrap().len(), 40);
    assert_eq!(other.list_orgs().await.unwrap().len(), 40);
    other.close().await;
}

async fn listen_notify(s: Store, ctx: Ctx) {
    if s.backend() == Backend::Sqlite {
        assert!(s.revocation_listener().await.unwrap().is_none());
        return;
    }
    let replica = ctx.open_again().await;
    let mut listener = replica.revocation_listener().await.unwrap().unwrap();
    let now = crate::clock::now_unix();
    let wait = Duration::from_secs(1);

    s.add_revocation("jti-notify-1", Some(now + 60), now).await.unwrap();
    let got = tokio::time::timeout(wait, listener.recv())
        .await
        .expect("notification within a second")
        .unwrap();
    assert_eq!(
        got,
        ("jti-notify-1".to_string(), Some(now + 60)),
        "the notification carries the expiry"
    );

    // Revoking a named token notifies too.
    let (org, alice) = org_and_user(&s, "alice").await;
    s.insert_named_token(&named("jti-named", &alice.uid, &org.id, None))
        .await
        .unwrap();
    s.revoke_named_token("jti-named", Some(&alice.uid), now)
        .await
        .unwrap()
        .unwrap();
    let got = tokio::time::timeout(wait, listener.recv())
        .await
        .expect("notification within a second")
        .unwrap();
    assert_eq!(got.0, "jti-named");

    // A rolled-back change sends nothing.
    let _ = s.add_revocation("", None, now).await;

    // Connection loss surfaces as an error; the listener then works again.
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%') t",
    )
    .fetch_one(s.pool())
    .await
    .unwrap();
    assert_eq!(killed, 1, "one listening backend");
    let lost = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("connection loss reported");
    assert!(matches!(lost, Err(StoreError::Unavailable(_))), "got {lost:?}");
    // The caller then opens a new listener (as the server's sync loop does).
    let mut listener = replica
        .revocation_listener()
        .await
        .unwrap()
        .expect("postgres has a listener");
    s.add_revocation("jti-after-reconnect", None, now).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("notification after reconnect")
        .unwrap();
    assert_eq!(got, ("jti-after-reconnect".to_string(), None));
    drop(listener);
    replica.close().await;
}

async fn wrong_kek_and_reopen(s: Store, ctx: Ctx) {
    let (_org, alice) = org_and_user(&s, "alice").await;
    let (client, secret) = s
        .create_client(&alice.uid, None, &[], crate::clock::now_unix())
        .await
        .unwrap();
    // Same KEK: migrations are idempotent, secrets readable.
    let again = ctx.open_again().await;
    let (_, bytes) = again.client_with_secret(&client.client_id).await.unwrap().unwrap();
    assert_eq!(bytes, secret.as_bytes());
    again.close().await;
    // Another KEK is refused at open.
    let err = Store::open(&ctx.url, 1, Kek::generate()).await.unwrap_err();
    assert!(matches!(err, StoreError::Crypto(_)), "got {err:?}");
    assert!(!err.to_string().contains(&ctx.kek.to_base64()));
}

async fn closed_store_is_unavailable(s: Store, _ctx: Ctx) {
    s.ping().await.unwrap();
    s.close().await;
    let err = s.ping().await.unwrap_err();
    assert!(err.is_unavailable(), "got {err:?}");
    assert!(matches!(
        s.create_org("x", crate::clock::now_unix()).await,
        Err(StoreError::Unavailable(_))
    ));
}

// ------------------------------------------------------- backend-free tests

#[test]
fn kek_round_trip_and_redaction() {
    let kek = Kek::generate();
    let b64 = kek.to_base64();
    let back = Kek::from_base64(&b64).unwrap();
    assert_eq!(back.to_base64(), b64);
    let url_safe = b64.replace('+', "-").replace('/', "_");
    assert_eq!(
        Kek::from_base64(url_safe.trim_end_matches('=')).unwrap().to_base64(),
        b64
    );
    assert!(matches!(Kek::from_base64("c2hvcnQ="), Err(StoreError::Invalid(_))));
    assert!(matches!(Kek::from_base64("!!"), Err(StoreError::Invalid(_))));
    assert_eq!(format!("{kek:?}"), "Kek(<redacted>)");
}

#[test]
fn cipher_binds_associated_data() {
    let cipher = Kek::generate().cipher().unwrap();
    let sealed = cipher.seal("a", b"secret").unwrap();
    assert_eq!(cipher.open("a", &sealed).unwrap(), b"secret");
    assert!(matches!(cipher.open("b", &sealed), Err(StoreError::Crypto(_))));
    assert_ne!(cipher.seal("a", b"secret").unwrap(), sealed, "random nonce");
    let other = Kek::generate().cipher().unwrap();
    assert!(other.open("a", &sealed).is_err());
    assert!(cipher.open("a", "AAAA").is_err());
}

#[test]
fn tokens_hashes_and_scopes() {
    let t = random_token("tgk_", 32);
    assert!(t.starts_with("tgk_") && t.len() == 47);
    assert_ne!(random_token("x", 16), random_token("x", 16));
    assert_eq!(
        sha256_hex("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(join_scopes(&scopes(&["a:b", "c", "a:b"])).unwrap(), "a:b c");
    assert!(join_scopes(&scopes(&[""])).is_err());
    assert!(join_scopes(&scopes(&["a\"b"])).is_err());
    assert!(join_scopes(&scopes(&["é"])).is_err());
}

#[test]
fn dummy_hash_is_well_formed_and_slow_path() {
    use argon2::password_hash::PasswordHash;
    let parsed = PasswordHash::new(crypto::DUMMY_PASSWORD_HASH).unwrap();
    let real = crypto::hash_password("x").unwrap();
    let real = PasswordHash::new(&real).unwrap();
    assert_eq!(parsed.algorithm, real.algorithm);
    assert_eq!(parsed.params, real.params);
    assert!(!crypto::verify_password_hash(crypto::DUMMY_PASSWORD_HASH, ""));
    assert!(crypto::verify_password_hash(
        &crypto::hash_password("pw").unwrap(),
        "pw"
    ));
}

#[test]
fn sqlite_urls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c.db");
    let (url, mem) = prepare_sqlite_url(&format!("sqlite://{}", path.display())).unwrap();
    assert!(!mem);
    assert!(url.ends_with("c.db?mode=rwc"));
    assert!(path.parent().unwrap().is_dir());
    assert!(prepare_sqlite_url("sqlite::memory:").unwrap().1);
    let (url, _) = prepare_sqlite_url(&format!("sqlite:{}?mode=ro", path.display())).unwrap();
    assert!(url.ends_with("?mode=ro"));
    assert_eq!(
        with_database("postgres://u:p@h:5432/db?sslmode=disable", "x"),
        "postgres://u:p@h:5432/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    assert!(Backend::from_url("mysql://x").is_err());
}

#[tokio::test]
async fn in_memory_sqlite_works() {
    let s = Store::open("sqlite::memory:", 8, Kek::generate()).await.unwrap();
    let org = s.create_org("mem", crate::clock::now_unix()).await.unwrap();
    s.create_user(&org.id, "m", None, crate::clock::now_unix())
        .await
        .unwrap();
    assert_eq!(s.list_orgs().await.unwrap().len(), 1);
}

#[tokio::test]
async fn open_errors_are_classified_without_secrets() {
    assert!(matches!(
        Store::open("mysql://x", 1, Kek::generate()).await,
        Err(StoreError::Invalid(_))
    ));
    let t = Instant::now();
    let err = Store::open("postgres://tilegate:s3cret-pw@127.0.0.1:1/none", 1, Kek::generate())
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "got {err:?}");
    assert!(!err.to_string().contains("s3cret-pw"));
    assert!(t.elapsed() < Duration::from_secs(10));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    // The parent "directory" is a file: cannot create the store.
    let err = Store::open(&format!("sqlite://{}/sub/x.db", file.display()), 1, Kek::generate())
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "got {err:?}");
}

#[tokio::test]
async fn postgres_wrong_password_is_unavailable() {
    let Some(url) = pg_admin_url() else {
        return;
    };
    let bad = url.replacen(":tilegate@", ":not-the-password@", 1);
    if bad == url {
        println!("skipped: URL has no tilegate password to replace");
        return;
    }
    let err = Store::open(&bad, 1, Kek::generate()).await.unwrap_err();
    assert!(err.is_unavailable(), "got {err:?}");
    assert!(!err.to_string().contains("not-the-password"));
}

// ------------------------------------------------- ceilings and containment

async fn ceilings_and_containment(s: Store, _ctx: Ctx) {
    let now = crate::clock::now_unix();
    let org = s
        .create_org_with(
            "ceilinged",
            Some(&scopes(&["tiles:read", "datasets:stream"])),
            crate::clock::now_unix(),
        )
        .await
        .unwrap();
    assert_eq!(org.scope_ceiling, Some(scopes(&["tiles:read", "datasets:stream"])));
    assert_eq!(s.find_org(&org.id).await.unwrap(), Some(org.clone()));
    let open = s.create_org("open", crate::clock::now_unix()).await.unwrap();
    assert_eq!(open.scope_ceiling, None);
    let none = s
        .create_org_with("nothing", Some(&[]), crate::clock::now_unix())
        .await
        .unwrap();
    assert_eq!(none.scope_ceiling, Some(vec![]), "an empty ceiling is not the default");
    assert_eq!(
        s.find_org("nothing").await.unwrap().unwrap().scope_ceiling,
        Some(vec![])
    );
    assert!(matches!(
        s.create_org_with("bad", Some(&scopes(&["a b"])), crate::clock::now_unix())
            .await,
        Err(StoreError::Invalid(_))
    ));

    let alice = s
        .create_user_with(
            &org.id,
            "alice",
            Some("correct horse"),
            Some(&scopes(&["tiles:read"])),
            crate::clock::now_unix(),
        )
        .await
        .unwrap();
    assert!(alice.login_id.starts_with("lgn_"));
    assert_eq!(s.find_user("alice").await.unwrap(), Some(alice.clone()));
    assert!(!serde_json::to_string(&alice).unwrap().contains(&alice.login_id));
    let sa = s
        .create_service_account(&org.id, "svc", crate::clock::now_unix())
        .await
        .unwrap();
    let limits = s
        .principal_limits(&Principal::User(alice.uid.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        limits,
        Limits {
            name: "alice".into(),
            org_id: org.id.clone(),
            org_ceiling: Some(scopes(&["tiles:read", "datasets:stream"])),
            user_ceiling: Some(scopes(&["tiles:read"])),
            disabled: false,
            tiles: None,
            allowed_origins: None,
        }
    );
    let sal = s
        .principal_limits(&Principal::ServiceAccount(sa.id.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (sal.name.as_str(), sal.user_ceiling, sal.disabled),
        ("svc", None, false)
    );
    for missing in [
        Principal::User("usr_missing".into()),
        Principal::ServiceAccount("sa_missing".into()),
        Principal::User("nul\u{0}".into()),
    ] {
        assert_eq!(s.principal_limits(&missing).await.unwrap(), None);
    }

    // Updates, and back to the default.
    let o = s
        .set_org_ceiling(&org.id, Some(&scopes(&["tiles:read"])))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.scope_ceiling, Some(scopes(&["tiles:read"])));
    assert_eq!(s.set_org_ceiling("org_missing", None).await.unwrap(), None);
    let u = s.set_user_ceiling(&alice.uid, None).await.unwrap().unwrap();
    assert_eq!(u.scope_ceiling, None);
    assert_eq!(s.set_user_ceiling("usr_missing", None).await.unwrap(), None);

    // Disabling: only with the current login id, which it replaces.
    assert!(!s.disable_user(&alice.uid, "lgn_stale", now).await.unwrap());
    assert_eq!(s.find_user(&alice.uid).await.unwrap().unwrap().disabled_at, None);
    assert!(matches!(
        s.disable_user("usr_missing", "lgn_x", now).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.disable_user(&alice.uid, &alice.login_id, now).await.unwrap());
    let disabled = s.find_user(&alice.uid).await.unwrap().unwrap();
    assert_eq!(disabled.disabled_at, Some(now));
    assert_ne!(disabled.login_id, alice.login_id);
    assert!(
        s.principal_limits(&Principal::User(alice.uid.clone()))
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    // A disabled user: the right password gives nothing, the generator
    // token mints nothing, no client can be made for it.
    assert_eq!(s.verify_password("alice", "correct horse").await.unwrap(), None);
    let (_, gen_plain) = s.generator_token(&alice.uid).await.unwrap().unwrap();
    assert_eq!(s.lookup_generator_token(&gen_plain).await.unwrap(), None);
    let clients_before = count(&s, "clients").await;
    assert!(matches!(
        s.create_client(&alice.uid, None, &scopes(&["tiles:read"]), crate::clock::now_unix())
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(count(&s, "clients").await, clients_before);
    // Disabling again keeps the first time.
    assert!(s.disable_user(&alice.uid, &disabled.login_id, now + 9).await.unwrap());
    assert_eq!(s.find_user(&alice.uid).await.unwrap().unwrap().disabled_at, Some(now));

    let enabled = s.enable_user(&alice.uid).await.unwrap().unwrap();
    assert_eq!(enabled.disabled_at, None);
    assert_eq!(s.enable_user("usr_missing").await.unwrap(), None);
    assert!(s.verify_password("alice", "correct horse").await.unwrap().is_some());
    assert!(s.lookup_generator_token(&gen_plain).await.unwrap().is_some());

    // A new password, with the current login id only.
    assert!(!s.set_password(&alice.uid, "lgn_stale", "new password").await.unwrap());
    assert!(s.verify_password("alice", "correct horse").await.unwrap().is_some());
    assert!(s
        .set_password(&alice.uid, &enabled.login_id, "new password")
        .await
        .unwrap());
    assert_eq!(s.verify_password("alice", "correct horse").await.unwrap(), None);
    let after = s.verify_password("alice", "new password").await.unwrap().unwrap();
    assert_ne!(after.login_id, enabled.login_id);
    assert!(matches!(
        s.set_password(&alice.uid, &after.login_id, "").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(!dump_table(&s, "users").await.contains("new password"));

    // Clients can be revoked; named tokens marked revoked in bulk.
    let (c, _) = s
        .create_client(
            &alice.uid,
            Some("app"),
            &scopes(&["tiles:read"]),
            crate::clock::now_unix(),
        )
        .await
        .unwrap();
    assert_eq!(c.revoked_at, None);
    assert_eq!(
        s.revoke_client(&c.client_id, now).await.unwrap().unwrap().revoked_at,
        Some(now)
    );
    assert_eq!(
        s.revoke_client(&c.client_id, now + 5)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(now)
    );
    assert_eq!(s.revoke_client("tgc_missing", now).await.unwrap(), None);
    let (found, _) = s.client_with_secret(&c.client_id).await.unwrap().unwrap();
    assert_eq!(found.revoked_at, Some(now));
    s.insert_named_token(&named("jti-c1", &alice.uid, &org.id, None))
        .await
        .unwrap();
    s.insert_named_token(&named("jti-c2", &alice.uid, &org.id, Some(now + 60)))
        .await
        .unwrap();
    assert_eq!(s.mark_named_tokens_revoked(&alice.uid, now).await.unwrap(), 2);
    assert_eq!(s.mark_named_tokens_revoked(&alice.uid, now).await.unwrap(), 0);
    assert!(s
        .list_named_tokens(Some(&alice.uid))
        .await
        .unwrap()
        .iter()
        .all(|t| t.revoked_at == Some(now)));
    assert_eq!(
        s.list_clients_in(None, Some(&org.id)).await.unwrap(),
        vec![found.clone()]
    );
    assert!(s.list_clients_in(None, Some(&open.id)).await.unwrap().is_empty());
}

async fn deletions(s: Store, _ctx: Ctx) {
    let now = crate::clock::now_unix();
    let (org, alice) = org_and_user(&s, "alice").await;
    let bob = s
        .create_user(&org.id, "bob", None, crate::clock::now_unix())
        .await
        .unwrap();
    let sa = s
        .create_service_account(&org.id, "svc", crate::clock::now_unix())
        .await
        .unwrap();
    let (c, _) = s
        .create_client(&alice.uid, None, &scopes(&["tiles:read"]), crate::clock::now_unix())
        .await
        .unwrap();
    s.use_assertion_jti(&c.client_id, "j1", now + 60, now).await.unwrap();
    s.insert_named_token(&named("jti-d1", &alice.uid, &org.id, None))
        .await
        .unwrap();
    let (ka, _) = s
        .create_api_key(
            &Principal::User(alice.uid.clone()),
            &scopes(&["tiles:read"]),
            None,
            crate::clock::now_unix(),
        )
        .await
        .unwrap();
    let (kb, _) = s
        .create_api_key(
            &Principal::User(bob.uid.clone()),
            &scopes(&["tiles:read"]),
            None,
            crate::clock::now_unix(),
        )
        .await
        .unwrap();
    let (ks, _) = s
        .create_api_key(
            &Principal::ServiceAccount(sa.id.clone()),
            &scopes(&["tiles:read"]),
            None,
            crate::clock::now_unix(),
        )
        .await
        .unwrap();
    assert_eq!(s.find_api_key(&ka.id).await.unwrap(), Some(ka.clone()));
    assert_eq!(s.find_api_key("key_missing").await.unwrap(), None);
    assert_eq!(s.find_api_key("nul\u{0}").await.unwrap(), None);

    // A user goes with everything it holds, nobody else's.
    assert!(s.delete_user(&alice.uid).await.unwrap());
    assert!(!s.delete_user(&alice.uid).await.unwrap());
    assert_eq!(s.find_user("alice").await.unwrap(), None);
    assert_eq!(s.generator_token(&alice.uid).await.unwrap(), None);
    assert!(s.list_clients(Some(&alice.uid)).await.unwrap().is_empty());
    assert!(s.list_named_tokens(Some(&alice.uid)).await.unwrap().is_empty());
    assert_eq!(s.find_api_key(&ka.id).await.unwrap(), None);
    assert_eq!(count(&s, "assertion_jtis").await, 0);
    assert!(s.find_api_key(&kb.id).await.unwrap().is_some());
    assert!(s.find_user("bob").await.unwrap().is_some());

    // An org with members is not deleted; once they are gone, it is.
    assert!(matches!(s.delete_org(&org.id).await, Err(StoreError::Conflict(_))));
    assert!(s.delete_service_account(&sa.id).await.unwrap());
    assert!(!s.delete_service_account(&sa.id).await.unwrap());
    assert_eq!(s.find_api_key(&ks.id).await.unwrap(), None);
    assert!(s.delete_user(&bob.uid).await.unwrap());
    assert!(s.delete_org(&org.id).await.unwrap());
    assert!(!s.delete_org(&org.id).await.unwrap());
    assert_eq!(s.find_org(&org.id).await.unwrap(), None);
    for table in [
        "users",
        "service_accounts",
        "api_keys",
        "clients",
        "named_tokens",
        "generator_tokens",
    ] {
        assert_eq!(count(&s, table).await, 0, "{table}");
    }
}

/// Only the first migration, as a store made by a release before the
/// scope ceilings.
#[derive(Debug)]
struct FirstMigrationOnly(Backend);

impl<'s> MigrationSource<'s> for FirstMigrationOnly {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        let list = match self.0 {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let first = list[..1]
            .iter()
            .map(|&(v, d, sql)| Migration::new(v, d.into(), MigrationType::Simple, sql.into(), false))
            .collect();
        Box::pin(async move { Ok(first) })
    }
}

/// A v1 store with a user, an org and a client opens under this release:
/// the user gets a login id, nobody a ceiling (the defaults), and the user
/// logs in as before.
async fn v1_store_migrates(kind: Kind) {
    let Some((url, db)) = setup(kind).await else {
        return;
    };
    sqlx::any::install_default_drivers();
    let backend = Backend::from_url(&url).unwrap();
    let connect = match backend {
        Backend::Sqlite => prepare_sqlite_url(&url).unwrap().0,
        Backend::Postgres => url.clone(),
    };
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&connect)
        .await
        .unwrap();
    Migrator::new(FirstMigrationOnly(backend))
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let hash = crypto::hash_password("correct horse").unwrap();
    for (sql, binds) in [
        (
            "INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, 1)",
            vec!["org_v1", "old"],
        ),
        (
            "INSERT INTO users (uid, org_id, username, password_hash, created_at) VALUES ($1, $2, $3, $4, 1)",
            vec!["usr_v1", "org_v1", "olduser", hash.as_str()],
        ),
        (
            "INSERT INTO clients (client_id, org_id, owner_uid, name, scopes, secret_enc, created_at) \
             VALUES ($1, $2, $3, NULL, $4, 'x', 1)",
            vec!["tgc_v1", "org_v1", "usr_v1", "tiles:read"],
        ),
    ] {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(b);
        }
        q.execute(&pool).await.unwrap();
    }
    pool.close().await;

    let kek = Kek::generate();
    let s = Store::open(&url, 2, kek.clone()).await.unwrap();
    let u = s.find_user("olduser").await.unwrap().unwrap();
    assert_eq!(u.login_id, "lgn_usr_v1");
    assert_eq!((u.scope_ceiling.clone(), u.disabled_at), (None, None));
    assert_eq!(s.verify_password("olduser", "correct horse").await.unwrap(), Some(u));
    assert_eq!(s.find_org("old").await.unwrap().unwrap().scope_ceiling, None);
    assert_eq!(s.list_clients(None).await.unwrap()[0].revoked_at, None);
    let l = s
        .principal_limits(&Principal::User("usr_v1".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((l.org_ceiling, l.user_ceiling, l.disabled), (None, None, false));
    // Opening again runs nothing more and finds the same.
    s.close().await;
    let s = Store::open(&url, 2, kek).await.unwrap();
    assert_eq!(s.find_user("olduser").await.unwrap().unwrap().login_id, "lgn_usr_v1");
    s.close().await;
    teardown(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_store_migrates_sqlite() {
    v1_store_migrates(Kind::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_store_migrates_postgres() {
    v1_store_migrates(Kind::Postgres).await
}

// ------------------------------------------------------- schema equivalence

/// What the migrations of one backend leave in the database, one line per
/// fact, in words common to both backends: tables; columns with their type
/// class, nullability and whether the database assigns them; primary keys;
/// indexes (unique or not) by their columns; foreign keys. Names the
/// databases choose themselves (those of constraint indexes) are left out.
/// sqlx's own `_sqlx_migrations` (different on purpose) and SQLite's
/// internal tables are not the store's schema.
async fn schema_of(store: &Store) -> BTreeSet<String> {
    let mut facts = BTreeSet::new();
    let rows = |sql: &'static str| async move {
        sqlx::query(sql)
            .fetch_all(store.pool())
            .await
            .unwrap_or_else(|e| panic!("schema query failed: {e}\n{sql}"))
    };
    let text = |r: &AnyRow, col: &str| -> String {
        r.try_get::<Option<String>, _>(col)
            .unwrap_or_else(|e| panic!("{col}: {e}"))
            .unwrap_or_default()
    };
    let int = |r: &AnyRow, col: &str| -> i64 { r.try_get::<i64, _>(col).unwrap_or_else(|e| panic!("{col}: {e}")) };
    match store.backend() {
        Backend::Sqlite => {
            const TABLES: &str = "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'";
            for r in rows(TABLES).await {
                facts.insert(format!("table {}", text(&r, "name")));
            }
            let columns = rows(
                "SELECT m.name AS tbl, p.name AS col, p.type AS type, p.\"notnull\" AS not_null, p.pk AS pk, \
                 (SELECT COUNT(*) FROM pragma_table_info(m.name) q WHERE q.pk > 0) AS pk_cols \
                 FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations' \
                 ORDER BY m.name, p.pk, p.cid",
            )
            .await;
            let mut pks: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for r in &columns {
                let (table, column, declared) = (text(r, "tbl"), text(r, "col"), text(r, "type"));
                let pk = int(r, "pk") > 0;
                // SQLite lets NULL into a primary-key column that is not
                // an INTEGER PRIMARY KEY (a historic quirk) unless NOT NULL
                // is declared; PostgreSQL never does. The store never
                // writes a NULL key, so a key column counts as NOT NULL.
                let not_null = int(r, "not_null") != 0 || pk;
                // An INTEGER PRIMARY KEY alone is the rowid: assigned by
                // the database when the insert leaves it out.
                let assigned = pk && int(r, "pk_cols") == 1 && declared.eq_ignore_ascii_case("INTEGER");
                facts.insert(column_fact(
                    &table,
                    &column,
                    sqlite_type_class(&declared),
                    not_null,
                    assigned,
                ));
                if pk {
                    pks.entry(table).or_default().push(column);
                }
            }
            for (table, cols) in pks {
                facts.insert(format!("primary key {table} ({})", cols.join(", ")));
            }
            // origin: 'pk' (the primary key's index, above), 'u' (a UNIQUE
            // constraint), 'c' (CREATE [UNIQUE] INDEX).
            let indexes = rows(
                "SELECT m.name AS tbl, l.\"unique\" AS is_unique, l.partial AS partial, \
                 (SELECT group_concat(name, ', ') FROM \
                    (SELECT i.name FROM pragma_index_info(l.name) i ORDER BY i.seqno)) AS cols \
                 FROM sqlite_master m, pragma_index_list(m.name) l \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations' \
                 AND l.origin <> 'pk'",
            )
            .await;
            for r in &indexes {
                facts.insert(index_fact(
                    &text(r, "tbl"),
                    &text(r, "cols"),
                    int(r, "is_unique") != 0,
                    int(r, "partial") != 0,
                ));
            }
            let fks = rows(
                "SELECT m.name AS tbl, f.id AS id, f.\"table\" AS ref, \
                 group_concat(f.\"from\", ', ') AS cols, group_concat(f.\"to\", ', ') AS ref_cols \
                 FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations' \
                 GROUP BY m.name, f.id",
            )
            .await;
            for r in &fks {
                facts.insert(format!(
                    "foreign key {} ({}) -> {} ({})",
                    text(r, "tbl"),
                    text(r, "cols"),
                    text(r, "ref"),
                    text(r, "ref_cols")
                ));
            }
        }
        Backend::Postgres => {
            let tables = rows(
                "SELECT table_name::text AS name FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
                 AND table_name <> '_sqlx_migrations'",
            )
            .await;
            for r in &tables {
                facts.insert(format!("table {}", text(r, "name")));
            }
            let columns = rows(
                "SELECT table_name::text AS tbl, column_name::text AS col, data_type::text AS type, \
                 is_nullable::text AS nullable, \
                 CASE WHEN is_identity = 'YES' OR column_default LIKE 'nextval(%' THEN 1 ELSE 0 END AS assigned \
                 FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
            )
            .await;
            for r in &columns {
                facts.insert(column_fact(
                    &text(r, "tbl"),
                    &text(r, "col"),
                    postgres_type_class(&text(r, "type")),
                    text(r, "nullable") == "NO",
                    int(r, "assigned") != 0,
                ));
            }
            // Every index, the primary key's and the UNIQUE constraints'
            // included, with its columns in key order.
            let indexes = rows(
                "SELECT t.relname::text AS tbl, \
                 CASE WHEN i.indisprimary THEN 1 ELSE 0 END AS is_primary, \
                 CASE WHEN i.indisunique THEN 1 ELSE 0 END AS is_unique, \
                 CASE WHEN i.indpred IS NULL THEN 0 ELSE 1 END AS partial, \
                 (SELECT string_agg(a.attname::text, ', ' ORDER BY k.ord) \
                    FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum) AS cols \
                 FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid \
                 JOIN pg_namespace n ON n.oid = t.relnamespace \
                 WHERE n.nspname = current_schema() AND t.relname <> '_sqlx_migrations'",
            )
            .await;
            for r in &indexes {
                let (table, cols) = (text(r, "tbl"), text(r, "cols"));
                if int(r, "is_primary") != 0 {
                    facts.insert(format!("primary key {table} ({cols})"));
                } else {
                    facts.insert(index_fact(
                        &table,
                        &cols,
                        int(r, "is_unique") != 0,
                        int(r, "partial") != 0,
                    ));
                }
            }
            let fks = rows(
                "SELECT c.conrelid::regclass::text AS tbl, c.confrelid::regclass::text AS ref, \
                 (SELECT string_agg(a.attname::text, ', ' ORDER BY k.ord) \
                    FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) \
                    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS cols, \
                 (SELECT string_agg(a.attname::text, ', ' ORDER BY k.ord) \
                    FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord) \
                    JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum) AS ref_cols \
                 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
                 WHERE c.contype = 'f' AND n.nspname = current_schema()",
            )
            .await;
            for r in &fks {
                facts.insert(format!(
                    "foreign key {} ({}) -> {} ({})",
                    text(r, "tbl"),
                    text(r, "cols"),
                    text(r, "ref"),
                    text(r, "ref_cols")
                ));
            }
        }
    }
    facts
}

fn column_fact(table: &str, column: &str, class: &str, not_null: bool, assigned: bool) -> String {
    format!(
        "column {table}.{column} {class}{}{}",
        if not_null { " not null" } else { " null" },
        if assigned { " assigned by the database" } else { "" }
    )
}

fn index_fact(table: &str, cols: &str, unique: bool, partial: bool) -> String {
    format!(
        "{} {table} ({cols}){}",
        if unique { "unique index" } else { "index" },
        if partial { " partial" } else { "" }
    )
}

/// SQLite's type affinity of a declared type (its rules, in their order).
fn sqlite_type_class(declared: &str) -> &'static str {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        "integer"
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        "text"
    } else if t.is_empty() || t.contains("BLOB") {
        "blob"
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        "real"
    } else {
        "numeric"
    }
}

/// The same classes for PostgreSQL's `information_schema` type names.
fn postgres_type_class(data_type: &str) -> &'static str {
    match data_type {
        "smallint" | "integer" | "bigint" => "integer",
        "text" | "character varying" | "character" => "text",
        "bytea" => "blob",
        "real" | "double precision" => "real",
        _ => "numeric",
    }
}

#[test]
fn type_classes() {
    for (sqlite, pg, class) in [
        ("BIGINT", "bigint", "integer"),
        ("INTEGER", "integer", "integer"),
        ("TEXT", "text", "text"),
        ("VARCHAR(20)", "character varying", "text"),
        ("BLOB", "bytea", "blob"),
        ("DOUBLE PRECISION", "double precision", "real"),
        ("NUMERIC", "numeric", "numeric"),
    ] {
        assert_eq!(
            (sqlite_type_class(sqlite), postgres_type_class(pg)),
            (class, class),
            "{sqlite}"
        );
    }
}

/// The SQLite and PostgreSQL migrations, written twice by hand, leave the
/// same schema: same tables, columns (type class, nullability, assigned by
/// the database or not), primary keys, indexes and foreign keys. Needs
/// PostgreSQL (skipped without `TILEGATE_TEST_PG_URL`, failing under CI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_give_one_schema() {
    let Some((pg_url, pg_db)) = setup(Kind::Postgres).await else {
        return;
    };
    let (sqlite_url, sqlite_db) = setup(Kind::Sqlite).await.expect("sqlite test database");
    let result = tokio::spawn(async move {
        let mut schemas = Vec::new();
        for url in [&sqlite_url, &pg_url] {
            let store = Store::open(url, 1, Kek::generate()).await.expect("open store");
            schemas.push(schema_of(&store).await);
            store.close().await;
        }
        schemas
    })
    .await;
    teardown(pg_db).await;
    drop(sqlite_db);
    let schemas = result.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let (sqlite, postgres) = (&schemas[0], &schemas[1]);
    // Not vacuous: the facts name what the migrations create.
    for fact in [
        "table audit_log",
        "column users.disabled_at integer null",
        "column audit_log.id integer not null assigned by the database",
        "primary key assertion_jtis (client_id, jti)",
        "unique index users (username)",
        "index api_keys (principal_kind, principal_id)",
        "foreign key users (org_id) -> orgs (id)",
    ] {
        assert!(sqlite.contains(fact), "{fact} missing from {sqlite:#?}");
    }
    let only_sqlite: Vec<_> = sqlite.difference(postgres).collect();
    let only_postgres: Vec<_> = postgres.difference(sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "the migrations differ\nonly in SQLite: {only_sqlite:#?}\nonly in PostgreSQL: {only_postgres:#?}"
    );
}
