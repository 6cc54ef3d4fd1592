-- tests/bench/pg_create.sql - the server's part of one create on a shared
-- runtime, replayed by pgbench (tests/bench/run, pg_create_cost) on the
-- daemon's CPU: what a create of kv/d/f costs the server and the round
-- trips to it, with no FUSE request and no daemon.
--
-- The same round trips, row locks and commit modes as the daemon's
-- (src/layer_pg_store.c), in plainer SQL: the kernel's LOOKUP of the
-- directory and its negative LOOKUP of the name (P_LOOKUP, one round trip
-- each); the CREATE, one pipelined transaction with synchronous_commit
-- off under the lock of the state row (P_STATE_LOCK, P_FAST_CREATE: the
-- row, the directory's times, the counters); the close's commit of the
-- value, one pipelined transaction that waits for the WAL flush
-- (P_FAST_COMMIT).  It runs on tables of its own (floor_entry,
-- floor_state: made by run), so that the bench's stores are untouched.
\set n random(1, 2000000000)
SELECT kind, mode, version, size FROM floor_entry WHERE parent = 'kv' AND name = 'd';
SELECT kind, mode, version, size FROM floor_entry WHERE parent = 'kv/d' AND name = 'f' || :n;
\startpipeline
BEGIN;
SET LOCAL synchronous_commit = off;
SELECT used, seq FROM floor_state WHERE id = 1 FOR UPDATE;
INSERT INTO floor_entry VALUES ('kv/d', 'f' || :n, 1, 420, 0, 0, NULL) ON CONFLICT DO NOTHING;
UPDATE floor_entry SET version = version + 1 WHERE parent = 'kv' AND name = 'd';
UPDATE floor_state SET used = used + 10, seq = seq + 1 WHERE id = 1;
COMMIT;
\endpipeline
\startpipeline
BEGIN;
SELECT used, seq FROM floor_state WHERE id = 1 FOR UPDATE;
UPDATE floor_entry SET value = '{"a":1}', size = 7, version = version + 1 WHERE parent = 'kv/d' AND name = 'f' || :n;
UPDATE floor_state SET used = used + 7, seq = seq + 1 WHERE id = 1;
COMMIT;
\endpipeline
