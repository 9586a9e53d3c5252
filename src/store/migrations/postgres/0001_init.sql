-- tilegate credential store, PostgreSQL schema v1.
-- Times are unix seconds. No column holds a plaintext secret: API keys and
-- access-generator tokens are looked up by SHA-256 hex; client secrets,
-- generator tokens and signing private keys are AES-256-GCM encrypted with
-- the KEK (base64 of nonce || ciphertext || tag).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE orgs (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    uid           TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id),
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX users_org_id ON users (org_id);

CREATE TABLE service_accounts (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX service_accounts_org_id ON service_accounts (org_id);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    key_hash       TEXT NOT NULL UNIQUE,
    prefix         TEXT NOT NULL,
    principal_kind TEXT NOT NULL CHECK (principal_kind IN ('user', 'service_account')),
    principal_id   TEXT NOT NULL,
    org_id         TEXT NOT NULL REFERENCES orgs (id),
    scopes         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT,
    revoked_at     BIGINT,
    last_used_at   BIGINT
);
CREATE INDEX api_keys_org_id ON api_keys (org_id);

CREATE TABLE generator_tokens (
    id         TEXT PRIMARY KEY,
    uid        TEXT NOT NULL UNIQUE REFERENCES users (uid),
    token_hash TEXT NOT NULL UNIQUE,
    token_enc  TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE clients (
    client_id  TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    owner_uid  TEXT NOT NULL REFERENCES users (uid),
    name       TEXT,
    scopes     TEXT NOT NULL,
    secret_enc TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX clients_owner_uid ON clients (owner_uid);

CREATE TABLE assertion_jtis (
    client_id TEXT NOT NULL,
    jti       TEXT NOT NULL,
    exp       BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX assertion_jtis_exp ON assertion_jtis (exp);

CREATE TABLE named_tokens (
    id            TEXT PRIMARY KEY,
    uid           TEXT NOT NULL REFERENCES users (uid),
    org_id        TEXT NOT NULL,
    generator_id  TEXT NOT NULL,
    name          TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX named_tokens_uid ON named_tokens (uid);

CREATE TABLE revocations (
    id         TEXT PRIMARY KEY,
    until      BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX revocations_until ON revocations (until);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_enc TEXT NOT NULL,
    public_jwk  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);

CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    detail     TEXT NOT NULL
);
