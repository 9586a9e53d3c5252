-- tilegate credential store, schema v2: scope ceilings and containment.
-- Kept identical for SQLite and PostgreSQL (both take ADD COLUMN and ||).
--
-- orgs.scope_ceiling, users.scope_ceiling: space-separated scopes that
--   every credential of the org / user stays within; NULL is the default
--   (org: every declared scope but clients:manage; user: the org's).
-- users.disabled_at: set while the user is disabled (no login, no new
--   credentials); NULL when enabled.
-- users.login_id: the `cid` of the user's login tokens; replaced (and the
--   old one revoked) when the user is disabled or the password is reset.
--   Existing users get 'lgn_' || uid.
-- clients.revoked_at: set when an operator action revoked the client.

ALTER TABLE orgs ADD COLUMN scope_ceiling TEXT;
ALTER TABLE users ADD COLUMN scope_ceiling TEXT;
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
ALTER TABLE users ADD COLUMN login_id TEXT;
UPDATE users SET login_id = 'lgn_' || uid WHERE login_id IS NULL;
ALTER TABLE clients ADD COLUMN revoked_at BIGINT;
CREATE INDEX clients_org_id ON clients (org_id);
CREATE INDEX named_tokens_org_id ON named_tokens (org_id);
CREATE INDEX api_keys_principal ON api_keys (principal_kind, principal_id);
