-- tilegate credential store, schema v3: tile grants.
-- Kept identical for SQLite and PostgreSQL.
--
-- api_keys.tiles: the key's tile-grant ceiling (docs/grants.md), as the
--   JSON of the `tiles` claim; NULL when the key is not limited to tiles.
--   Every token exchanged from the key carries it or a narrower grant.

ALTER TABLE api_keys ADD COLUMN tiles TEXT;
