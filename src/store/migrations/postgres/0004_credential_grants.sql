-- tilegate credential store, schema v4: tile-grant ceilings and allowed
-- origins on OAuth clients and service accounts, and the grant of each
-- named token. Kept identical for SQLite and PostgreSQL.
--
-- clients.tiles, service_accounts.tiles: the credential's tile-grant
--   ceiling (docs/grants.md), as the JSON of the `tiles` claim; NULL when
--   not limited to tiles. Every token minted from the client, or from an
--   API key of the service account, carries it or a narrower grant.
-- clients.allowed_origins, service_accounts.allowed_origins: the web
--   origins those tokens may be used from, space-separated; NULL for any.
-- named_tokens.tiles: the grant the named token carries, for listings;
--   NULL when it carries none.

ALTER TABLE clients ADD COLUMN tiles TEXT;
ALTER TABLE clients ADD COLUMN allowed_origins TEXT;
ALTER TABLE service_accounts ADD COLUMN tiles TEXT;
ALTER TABLE service_accounts ADD COLUMN allowed_origins TEXT;
ALTER TABLE named_tokens ADD COLUMN tiles TEXT;
