-- tests/bench/pg_commit.sql - the commit of one create on a shared
-- runtime, as the daemon makes it at the close (tests/bench/pg_create.sql
-- says what it stands for): alone, the server's part of a create on a
-- host mounted with cache_timeout, which remembers that the name is new
-- and its directory's attributes (src/layer_pg_known.c).
\set n random(1, 2000000000)
\startpipeline
BEGIN;
SELECT used, seq FROM floor_state WHERE id = 1 FOR UPDATE;
INSERT INTO floor_entry VALUES ('kv/d', 'f' || :n, 1, 420, 0, 7, '{"a":1}') ON CONFLICT DO NOTHING;
UPDATE floor_entry SET version = version + 1 WHERE parent = 'kv' AND name = 'd';
UPDATE floor_state SET used = used + 9, seq = seq + 1 WHERE id = 1;
COMMIT;
\endpipeline
