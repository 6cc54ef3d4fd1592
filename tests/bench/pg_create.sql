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
-- untouched.  The commit is tests/bench/pg_commit.sql, which run appends
-- to this file, and replays alone for a host mounted with cache_timeout,
-- whose create asks the server for nothing else (src/layer_pg_known.c).
\set n random(1, 2000000000)
SELECT true, kind, mode, version, size FROM floor_entry WHERE parent = 'kv' AND name = 'd' UNION ALL SELECT false, kind, mode, version, size FROM floor_entry WHERE parent = '' AND name = 'kv';
SELECT true, kind, mode, version, size FROM floor_entry WHERE parent = 'kv/d' AND name = 'f' || :n UNION ALL SELECT false, kind, mode, version, size FROM floor_entry WHERE parent = 'kv' AND name = 'd';
