-- tests/bench/pg_create.sql - the server's part of one create on a shared
-- runtime, replayed by pgbench (tests/bench/run, pg_create_cost) on the
-- daemon's CPU: what a create of kv/d/f costs the server and the round
-- trips to it, with no FUSE request and no daemon.
--
-- The same round trips, row locks and commit modes as the daemon's
-- (src/layer_pg_store.c), in plainer SQL: the kernel's LOOKUP of the
-- directory and its negative LOOKUP of the name, each reading the entry
-- and its parent's row (P_TARGET, one round trip each); no trip for the
-- CREATE, which an open(O_TRUNC) leaves to the close
-- (src/layer_pg_defer.c); the close's commit, one pipelined transaction
-- under the lock of the state row (P_STATE_LOCK) that makes the file
-- with its value, stamps the directory and counts both (P_FAST_CREATE),
-- and waits for the WAL flush.  It runs on tables of its own
-- (floor_entry, floor_state: made by run), so that the bench's stores are
-- untouched.
\set n random(1, 2000000000)
SELECT true, kind, mode, version, size FROM floor_entry WHERE parent = 'kv' AND name = 'd' UNION ALL SELECT false, kind, mode, version, size FROM floor_entry WHERE parent = '' AND name = 'kv';
SELECT true, kind, mode, version, size FROM floor_entry WHERE parent = 'kv/d' AND name = 'f' || :n UNION ALL SELECT false, kind, mode, version, size FROM floor_entry WHERE parent = 'kv' AND name = 'd';
\startpipeline
BEGIN;
SELECT used, seq FROM floor_state WHERE id = 1 FOR UPDATE;
INSERT INTO floor_entry VALUES ('kv/d', 'f' || :n, 1, 420, 0, 7, '{"a":1}') ON CONFLICT DO NOTHING;
UPDATE floor_entry SET version = version + 1 WHERE parent = 'kv' AND name = 'd';
UPDATE floor_state SET used = used + 9, seq = seq + 1 WHERE id = 1;
COMMIT;
\endpipeline
