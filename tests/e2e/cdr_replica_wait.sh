#!/bin/bash
#
# cdr_replica_wait — with redis_wait_replicas = 1 a CDR leaves the spool only
# once a replica has it, and a CDR replayed as dup removes its call's record.
#
#   1. A Redis primary (Unix socket for b2bua, TCP on $ADDR for its replica)
#      and one replica (--replicaof, TCP on $ADDR), in sync.  One call: its
#      CDR is confirmed, the spools are empty.
#   2. The replica is paused (SIGSTOP).  N calls: the primary stores their
#      CDRs, but none is confirmed: the spools hold N lines, `show stats`
#      says cdr_spooled N and cdr_unreplicated N, the log says it once per
#      worker that wrote CDRs.
#   3. The replica is resumed (SIGCONT): the spools empty, the stream holds
#      N + 1 CDRs, each id exactly once, each with its seen key, on the
#      replica too; cdr_spooled 0.
#   4. b2bua is stopped; the N spool lines saved in step 2 are put back in
#      a worker's spool and each CDR gets a (malformed) record in
#      <p>calls:<node_id>, plus one of another call.  b2bua starts again:
#      its master closes its previous life's records before any worker
#      serves (b2bua/hosts.h): the malformed ones are set aside in
#      <p>callsbad:<node_id>, none is left; then the spool replays, all
#      dup: the stream is unchanged.  (That a dup deletes its call's record
#      in the CDR script is asserted in check_store, where no start-up
#      closer runs first.)

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

command -v redis-server >/dev/null 2>&1 ||
	skip "redis-server not found (Debian package redis-server)"

SIPP_TIMEOUT=30
N=20
PRIMARY_PORT=6390     # on $ADDR, the test's own address: no collision
REPLICA_PORT=6391
NODE_ID="e2e-${TEST_NAME//_/-}"

# The primary: lib.sh's redis_start, plus a TCP port for the replica and
# no 5 s delay before the first full sync.
primary_start() {
	REDIS_SOCK=$T/redis.sock
	redis-server --port $PRIMARY_PORT --bind "$ADDR" --unixsocket "$REDIS_SOCK" \
		--unixsocketperm 700 --save "" --appendonly no --daemonize no --dir "$T" \
		--repl-diskless-sync-delay 0 >"$T/redis.log" 2>&1 &
	REDIS_PID=$!
	_track "$REDIS_PID"
	wait_for 5 redis_answers || fail "redis-server (primary) not ready within 5 s"
}
redis_answers() { [ "$(rcli ping 2>/dev/null)" = PONG ]; }

replica_start() {
	mkdir -p "$T/replica"
	redis-server --port $REPLICA_PORT --bind "$ADDR" --replicaof "$ADDR" $PRIMARY_PORT \
		--save "" --appendonly no --daemonize no --dir "$T/replica" \
		>"$T/replica.log" 2>&1 &
	REPLICA_PID=$!
	_track "$REPLICA_PID"
	wait_for 10 replica_acks || fail "the replica does not acknowledge writes"
}
# A write now, acknowledged by the replica within 100 ms.
replica_acks() {
	[ "$(printf 'SET e2e:probe 1\r\nWAIT 1 100\r\n' | rcli | tail -n 1)" = 1 ]
}
replica_cli() { redis-cli -h "$ADDR" -p $REPLICA_PORT "$@"; }

spooled() { cat "$T"/spool/*.spool 2>/dev/null | wc -l; }

primary_start
replica_start
CFG_EXTRA="redis_wait_replicas = 1;
redis_wait_timeout = 300;"
write_config
b2b_start
wait_for 5 redis_up || fail "the workers did not connect to Redis"

# --- 1. a call, replica in sync
uas_start uas0 uas_basic -m 1
uac_run uac0 uac_basic -m 1
uas_wait uas0
wait_cdrs 1
none_spooled() { [ "$(spooled)" -eq 0 ] && [ "$(stat_of cdr_spooled)" = 0 ]; }
wait_for 5 none_spooled || fail "the first CDR was not confirmed: $(spooled) spooled"
# A very slow machine may have missed one WAIT already: count from here.
u0=$(stat_of cdr_unreplicated)
warned0=$(grep -c 'CDRs not yet on a replica' "$T/b2bua.log")

# --- 2. the replica paused
log "pausing the replica (SIGSTOP, pid $REPLICA_PID)"
kill -STOP "$REPLICA_PID" || hard_error "cannot stop the replica"
uas_start uas uas_basic -m $N
uac_run uac uac_basic -m $N -r 10 -l $N -d 200
uas_wait uas
assert_sipp_ok uac $N
have_n() { [ "$(spooled)" -eq $N ] && [ "$(cdr_len)" -eq $((N + 1)) ]; }
wait_for 5 have_n || fail "expected $N spooled CDRs and $((N + 1)) stored: $(spooled), $(cdr_len)"
sleep 1.5   # several WAIT rounds: still nothing confirmed, nothing counted twice
assert_eq $N "$(spooled)" "CDR lines in the spools (none confirmed)"
assert_eq $N "$(stat_of cdr_spooled)" "show stats: cdr_spooled"
assert_eq $((u0 + N)) "$(stat_of cdr_unreplicated)" "show stats: cdr_unreplicated"
cli show stats | grep -E '^cdr spooled: +'"$N"' \(unreplicated: '"$((u0 + N))"'\)$' >/dev/null ||
	fail "show stats (text) does not say $N CDRs spooled, $((u0 + N)) unreplicated: $(cli show stats)"
assert_grep "CDRs not yet on a replica \(WAIT 1 -> 0 within 300 ms\): keeping them in $T/spool/" \
	"$T/b2bua.log" "the daemon says the CDRs wait for a replica"
warned=$(($(grep -c 'CDRs not yet on a replica' "$T/b2bua.log") - warned0))
assert_between 1 "$CFG_WORKERS" "$warned" "warnings (one per worker and episode)"
cat "$T"/spool/*.spool >"$T/saved.spool"

# --- 3. the replica resumed
log "resuming the replica (SIGCONT)"
kill -CONT "$REPLICA_PID"
# (the writer retries a short WAIT after 0.5 s, doubling up to 8 s: see cdr_writer.c)
wait_for 15 none_spooled || fail "not confirmed after the replica came back: $(spooled) spooled"
assert_grep 'CDRs reach a replica again' "$T/b2bua.log" "the daemon says the replica is back"
cdr_load
assert_eq $((N + 1)) "$(jq length "$CDR_JSON")" "CDRs in the stream"
assert_eq $((N + 1)) "$(jq '[.[].id] | unique | length' "$CDR_JSON")" "distinct CDR ids"
assert_eq $((N + 1)) "$(replica_cli XLEN "$CDR_STREAM")" "CDRs in the replica's stream"
missing=0
for id in $(jq -r '.[].id' "$CDR_JSON"); do
	[ "$(rcli EXISTS "$CDR_STREAM:seen:$id")" = 1 ] || missing=$((missing + 1))
done
assert_eq 0 "$missing" "CDRs without their seen key"
assert_eq $((u0 + N)) "$(stat_of cdr_unreplicated)" "show stats: cdr_unreplicated (each once)"

# --- 4. replayed as dup: the calls' records go
b2b_stop || fail "b2bua did not stop cleanly"
CALLS_KEY="b2bua:calls:$NODE_ID"
cp "$T/saved.spool" "$T/spool/cdr-$NODE_ID-w0.spool"
ids=$(cut -f2 "$T/saved.spool")
for id in $ids; do
	rcli HSET "$CALLS_KEY" "$id" record >/dev/null
done
rcli HSET "$CALLS_KEY" other-call record >/dev/null
assert_eq $((N + 1)) "$(rcli HLEN "$CALLS_KEY")" "call records before the replay"
b2b_start
replayed() { [ "$(spooled)" -eq 0 ] && [ "$(rcli HLEN "$CALLS_KEY")" = 0 ]; }
wait_for 10 replayed ||
	fail "replay: $(spooled) spooled, $(rcli HLEN "$CALLS_KEY") call records left"
assert_eq $((N + 1)) "$(rcli HLEN "b2bua:callsbad:$NODE_ID")" \
	"malformed records of the previous life set aside by the start-up"
assert_eq $((N + 1)) "$(cdr_len)" "CDRs in the stream after the replay (all dup)"
assert_grep "replayed $N CDRs from $T/spool/cdr-$NODE_ID-w0.spool" "$T/b2bua.log" \
	"the replay is logged"
assert_no_grep 'LOST|rejected by' "$T/b2bua.log" "no CDR lost or rejected"
log "PASS"
