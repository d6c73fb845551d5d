#!/bin/bash
#
# cdr_redis_outage — CDRs survive a Redis outage: none lost, none twice.
#
#   1. One call with Redis up: its CDR is in the stream.  Redis is told to
#      SAVE (so that the restarted server has that CDR and its dedup key
#      again), then its process is killed.
#   2. While Redis is down, N calls over the static route still succeed
#      (nothing in a call's path needs Redis); their CDRs go to the spool
#      files in $T/spool (one line each, N in all), and the daemon says it
#      is spooling.
#   3. redis-server is started again on the same socket: within a few
#      seconds the workers reconnect and replay the spool; the stream then
#      holds exactly one CDR per call - the one from before the outage and
#      the N spooled ones, by id and by Call-ID, no duplicate - with their
#      fields intact, and the spool files are empty.  Nothing more arrives
#      after that.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=20
N=6
redis_start
b2b_start
wait_for 5 redis_up || fail "the workers did not connect to Redis"

# spooled: the CDR lines waiting in all the workers' spool files.
spooled() { cat "$T"/spool/*.spool 2>/dev/null | wc -l; }

# --- 1. a call with Redis up
uas_start uas0 uas_basic -m 1
uac_run uac0 uac_basic -m 1
uas_wait uas0
wait_cdrs 1
assert_eq "$(call_ids "$T/uac0.msg" sent)" "$(cdr_get 0 a_call_id)" "the first call's CDR"
assert_eq OK "$(rcli SAVE)" "redis: SAVE before the outage"
log "killing redis-server (pid $REDIS_PID)"
_stop "$REDIS_PID"
alive "$REDIS_PID" && fail "redis-server still running"
lost() { [ "$(grep -c 'redis unix:.*: connection lost' "$T/b2bua.log")" -ge "$CFG_WORKERS" ]; }
wait_for 5 lost || fail "the workers did not notice Redis going away"
log "ok: every worker noticed the outage"

# --- 2. calls while Redis is down
uas_start uas uas_basic -m $N
uac_run uac uac_basic -m $N -r 10 -l $N -d 200
uas_wait uas
assert_sipp_ok uac $N
assert_sipp_ok uas $N
assert_count "$T/uac.msg" recv 200/BYE $N
have_n() { [ "$(spooled)" -eq $N ]; }
wait_for 5 have_n || fail "expected $N spooled CDRs, the spool has $(spooled)"
assert_eq $N "$(spooled)" "CDR lines in $T/spool"
ls -l "$T"/spool >&2
assert_grep 'unreachable: spooling CDRs to' "$T/b2bua.log" "the daemon says it is spooling"
assert_eq 0 "$(stat_of calls_active)" "stats: no call left"

# --- 3. Redis is back
redis_start
log "redis-server restarted (pid $REDIS_PID) on $REDIS_SOCK"
all_in() { [ "$(cdr_len)" -ge $((N + 1)) ] && [ "$(spooled)" -eq 0 ]; }
wait_for 15 all_in || fail "after the restart: $(cdr_len) CDRs in the stream, $(spooled) spooled"
log "ok: the spool was replayed"
wait_cdrs $((N + 1))
assert_eq 0 "$(spooled)" "spool lines left"
for f in "$T"/spool/*.spool; do
	assert_eq 0 "$(stat -c %s "$f")" "$(basename "$f") is empty"
done
assert_eq $((N + 1)) "$(jq '[.[].id] | unique | length' "$CDR_JSON")" "distinct CDR ids"
assert_eq "$(sort <(call_ids "$T/uac0.msg" sent) <(call_ids "$T/uac.msg" sent))" \
	"$(jq -r '.[].a_call_id' "$CDR_JSON" | sort)" "one CDR per call, by the caller's Call-ID"
assert_eq "$(call_ids "$T/uas.msg" recv)" "$(jq -r '.[1:][].b_call_id' "$CDR_JSON" | sort)" \
	"the spooled CDRs' B-leg Call-IDs"
for ((i = 1; i <= N; i++)); do
	assert_cdr_fields $i
	[ "$(cdr_get $i disposition)/$(cdr_get $i sip_code)/$(cdr_get $i hangup_by)" = \
		ANSWERED/200/caller ] || fail "spooled CDR $i: $(jq -c ".[$i]" "$CDR_JSON")"
	[ "$(cdr_get $i callee)" = "sip:1000@$ADDR:$SIP_PORT" ] &&
		[ "$(cdr_get $i caller)" = "$(from_uri "$T/uac.msg")" ] &&
		[ "$(cdr_get $i host)" = "$(node_id)" ] &&
		[ "$(cdr_get $i answered_by)" = "sip:1000@$ADDR:$UAS_PORT;transport=udp" ] ||
		fail "spooled CDR $i: $(jq -c ".[$i]" "$CDR_JSON")"
	assert_cdr_times $i
	assert_between 150 1500 "$(cdr_get $i billable_ms)" "spooled CDR $i: billable_ms"
done
log "ok: the $N spooled CDRs kept every field"
# Reconnected, and nothing more trickles in.
back() { [ "$(grep -c "redis unix:.*: connected (down" "$T/b2bua.log")" -ge "$CFG_WORKERS" ]; }
wait_for 5 back || fail "the workers did not log their reconnection"
log "ok: every worker logged its reconnection"
sleep 1
assert_eq $((N + 1)) "$(cdr_len)" "CDRs in the stream a second later"
assert_no_grep 'LOST|rejected' "$T/b2bua.log" "no CDR lost or rejected"
log "PASS"
