-- tilegate credential store, schema v3: tile grants and allowed origins.
-- Kept identical for SQLite and PostgreSQL.
--
-- api_keys.tiles: the key's tile-grant ceiling (docs/grants.md), as the
--   JSON of the `tiles` claim; NULL when the key is not limited to tiles.
--   Every token exchanged from the key carries it or a narrower grant.
-- api_keys.allowed_origins: the web origins the key's tokens may be used
--   from on routes that bind origins, space-separated; NULL for any.

ALTER TABLE api_keys ADD COLUMN tiles TEXT;
ALTER TABLE api_keys ADD COLUMN allowed_origins TEXT;
