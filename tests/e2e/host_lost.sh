#!/bin/bash
#
# host_lost — the answered calls of a host that dies are billed and released
# by a surviving host (issue 10, item 3; b2bua/hosts.h).
#
# Three hosts share one Redis (host_lease 4 s).  carol (no limit) and bob
# (max_calls 1) register through host1; their UAs answer as sipp UASes.
#   1. $N calls to carol and one to bob go through host2 and are answered:
#      host2 keeps one record per call in <p>calls:host2, `show hosts` on
#      host1 counts them.
#   2. every process of host2 is SIGKILLed (by PID).  Within host_lease +
#      5 s each call's CDR is in the stream exactly once: ANSWERED, hangup
#      by system, cause host_lost, closed_by a survivor, end_ms host2's last
#      heartbeat (at most a heartbeat interval before the kill; the calls
#      talked 2 s, so every answer is before it), billable
#      end - answer; the records are gone, active:bob is empty, and exactly
#      one "host host2 lost" line was logged, by the survivor that wrote
#      the CDRs.  `show hosts` says host2 is lost and who closed its calls.
#      A malformed record put among host2's is logged and kept aside.
#   3. the survivors keep serving: bob (max_calls 1, its entry released)
#      is called again through host1, then through host3.
#   4. host2 restarts, takes $M calls to carol, is SIGKILLed with them up
#      and restarted at once with the same node_id: before its workers
#      start it closes those calls itself (closed_by host2, one "restarted"
#      line), then serves a call again.
#   5. host3 stops (SIGTERM) with no call: when its lease runs out it is
#      `stopped` in `show hosts`, and nobody reports it lost.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/multihost_lib.sh"

HOSTS=3
LEASE_MS=4000
N=5            # calls to carol through host2 in 2.
M=3            # calls to carol through host2 in 4.
CAROL_PORT=5083
BOB_PORT=5084

MH_CFG_EXTRA_ALL="host_lease = $LEASE_MS;"

cdrs_lost() { mh_cdrs | jq -c 'select(.cause == "host_lost")'; }
n_lost_cdrs() { cdrs_lost | wc -l; }
lost_cdrs_at_least() { [ "$(n_lost_cdrs)" -ge "$1" ]; }
records() { rcli HLEN "${MH_PREFIX}calls:host2"; }
records_are() { [ "$(records)" = "$1" ]; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# call_bob HOST NAME: one short call to bob through HOST, answered.
call_bob() {
	uas_start "$2-uas" uas_basic -p "$BOB_PORT" -m 1
	mh_uac_run "$1" "$2" uac_basic -s bob -m 1
	uas_wait "$2-uas"
	assert_sipp_ok "$2" 1
	assert_count "$T/$2.msg" recv 200/INVITE 1
}

mh_redis_start
mh_start_all "$HOSTS"
wait_for 5 mh_all_redis_up "$HOSTS" || fail "not every host's workers connected to Redis"
mh_add_user carol carolpw
mh_add_user bob bobpw --max-calls 1
mh_register 1 rc carol carolpw "$CAROL_PORT"
mh_register 1 rb bob bobpw "$BOB_PORT"

assert_eq "host1 host2 host3" "$(mh_cli_json 1 hosts '[.[] | select(.alive) | .node_id] | join(" ")')" \
	"show hosts: three hosts alive"

# ---------------------------------------------------------------- 1
uas_start carol-uas uas_basic -p "$CAROL_PORT" -m "$N"
uas_start bob-uas uas_basic -p "$BOB_PORT" -m 1
mh_uac_start 2 up uac_long -s carol -m "$N" -r "$N"
mh_uac_start 2 upbob uac_long -s bob -m 1
wait_for 5 records_are $((N + 1)) || fail "host2 keeps $(records) call records, expected $((N + 1))"
assert_eq 1 "$(rcli ZCARD "${MH_PREFIX}active:bob")" "bob's call is counted (active:bob)"
assert_eq $((N + 1)) "$(mh_cli_json 1 hosts '.[] | select(.node_id == "host2") | .calls')" \
	"show hosts on host1: host2's calls"
sleep 2   # talk a while: a heartbeat or more after every answer
# Bad input: a record that is no record (written by hand, or by a bug).
rcli HSET "${MH_PREFIX}calls:host2" bogus-1 "not a call record" >/dev/null

# ---------------------------------------------------------------- 2
mh_kill 2
killed_ms=$(now_ms)
beat_ms=$(rcli HGET "${MH_PREFIX}host:host2" beat_ms)
wait_for $((LEASE_MS / 1000 + 5)) lost_cdrs_at_least $((N + 1)) ||
	fail "$(n_lost_cdrs) host_lost CDRs within lease + 5 s, expected $((N + 1))"
log "ok: $((N + 1)) CDRs written within $(( $(now_ms) - killed_ms )) ms of the kill"
sleep 1   # a second closer, if there were one, would have written by now
cdrs_lost >"$T/lost.jsonl"
assert_eq $((N + 1)) "$(wc -l <"$T/lost.jsonl")" "host_lost CDRs (each once)"
assert_eq $((N + 1)) "$(mh_cdrs | wc -l)" "CDRs in the stream (no other for these calls)"
call_ids "$T/up.msg" sent >"$T/sent"
call_ids "$T/upbob.msg" sent >>"$T/sent"
sort -o "$T/sent" "$T/sent"
assert_eq "$(cat "$T/sent")" "$(jq -r .a_call_id "$T/lost.jsonl" | sort)" \
	"the CDRs are exactly the calls host2 carried"
assert_eq $((N + 1)) "$(jq -r .id "$T/lost.jsonl" | sort -u | wc -l)" "distinct CDR ids"
closer=$(jq -r .closed_by "$T/lost.jsonl" | sort -u)
case $closer in
host1 | host3) log "ok: closed by $closer" ;;
*) fail "closed_by: '$closer', expected one survivor" ;;
esac
assert_eq 0 "$(jq -r 'select(.disposition != "ANSWERED" or .hangup_by != "system"
	or .host != "host2" or .sip_code != "200") | .id' "$T/lost.jsonl" | wc -l)" \
	"every CDR: ANSWERED, 200, hangup_by system, host host2"
assert_eq 0 "$(jq -r --arg b "$beat_ms" 'select(.end_ms != $b or (.answer_ms | tonumber) > ($b | tonumber))
	| .id' "$T/lost.jsonl" | wc -l)" "every CDR ends at host2's last heartbeat ($beat_ms)"
assert_eq 0 "$(jq -r 'select((.end_ms | tonumber) - (.answer_ms | tonumber)
	!= (.billable_ms | tonumber)) | .id' "$T/lost.jsonl" | wc -l)" "billable_ms = end - answer"
gap=$((killed_ms - beat_ms))
[ "$gap" -ge 0 ] && [ "$gap" -le $((LEASE_MS / 3 + 1000)) ] ||
	fail "last heartbeat $gap ms before the kill (at most a heartbeat interval)"
assert_eq 0 "$(records)" "host2's call records are gone"
assert_eq "not a call record" "$(rcli HGET "${MH_PREFIX}callsbad:host2" bogus-1)" \
	"the malformed record was kept aside"
assert_grep "host host2: call record bogus-1 is malformed: kept aside" "$(mh_log "${closer#host}")" \
	"the closer logged the malformed record"
assert_eq 0 "$(rcli ZCARD "${MH_PREFIX}active:bob")" "active:bob released"
lines=0
for h in 1 3; do
	n=$(grep -c "host host2 lost (last heartbeat [0-9.]* s ago): closed $((N + 1)) calls, CDRs written by host$h" \
		"$(mh_log "$h")")
	lines=$((lines + n))
done
assert_eq 1 "$lines" "one 'host host2 lost' line across the survivors"
assert_eq 0 "$(cat "$(mh_log 1)" "$(mh_log 3)" | grep -c 'host host2 (lost): closed')" \
	"no second closing"
mh_cli 1 show hosts >"$T/hosts.txt" || fail "show hosts failed"
cat "$T/hosts.txt" >&2
assert_grep "^host2 .* lost .* $closer .* $((N + 1))\$" "$T/hosts.txt" "show hosts: host2 lost, closed by $closer"
assert_eq "false $closer $((N + 1)) 0 1" \
	"$(mh_cli_json 3 hosts '.[] | select(.node_id == "host2") | "\(.alive) \(.closed.by) \(.closed.calls) \(.calls) \(.bad_records)"')" \
	"show hosts --json on host3: host2"
sipp_stop up
sipp_stop upbob
sipp_stop carol-uas
sipp_stop bob-uas

# ---------------------------------------------------------------- 3
call_bob 1 bob1
call_bob 3 bob3
log "ok: bob (max_calls 1) called through host1 and host3 after host2's loss"

# ---------------------------------------------------------------- 4
mh_start 2
wait_for 5 mh_redis_up 2 || fail "host2 (restarted) did not connect to Redis"
assert_eq true "$(mh_cli_json 1 hosts '.[] | select(.node_id == "host2") | .alive')" \
	"show hosts: host2 alive again"
uas_start carol2-uas uas_basic -p "$CAROL_PORT" -m "$M"
mh_uac_start 2 up2 uac_long -s carol -m "$M" -r "$M"
wait_for 5 records_are "$M" || fail "host2 keeps $(records) call records, expected $M"
before=$(n_lost_cdrs)
mh_kill 2
mh_start 2
logf=$(mh_log 2)
assert_grep "host host2 restarted: closed $M calls of its previous life .*CDRs written by host2" \
	"$logf" "host2 closed its own leftovers"
closed_at=$(grep -n "host host2 restarted: closed" "$logf" | head -n 1 | cut -d: -f1)
ready_at=$(grep -n "worker [0-9]* ready:" "$logf" | head -n 1 | cut -d: -f1)
[ "$closed_at" -lt "$ready_at" ] || fail "host2 served (line $ready_at) before closing its leftovers (line $closed_at)"
assert_eq $((before + M)) "$(n_lost_cdrs)" "host_lost CDRs after the restart"
assert_eq "$M" "$(cdrs_lost | jq -r 'select(.closed_by == "host2") | .id' | wc -l)" \
	"the leftovers' CDRs were written by host2 itself"
assert_eq 0 "$(records)" "no record left after the restart"
assert_eq 0 "$(cat "$(mh_log 1)" "$(mh_log 3)" | grep -c 'host host2 restarted')" \
	"the survivors closed nothing of host2's second life"
sipp_stop up2
sipp_stop carol2-uas
wait_for 5 mh_redis_up 2 || fail "host2 (restarted again) did not connect to Redis"
call_bob 2 bob2
log "ok: host2 serves again"

for h in 1 3; do
	assert_no_grep "(error|crit)" "$(mh_log "$h")" "no errors in host $h's log"
done

# ---------------------------------------------------------------- 5
# A host stopped on purpose with no call left is not reported lost.
mh_stop 3 || fail "host 3: b2bua exited $? on SIGTERM"
host3_stopped() { [ "$(mh_cli_json 1 hosts '.[] | select(.node_id == "host3") | .state')" = stopped ]; }
wait_for $((LEASE_MS / 1000 + 3)) host3_stopped || fail "show hosts: host3 not 'stopped' after its lease"
sleep 1
assert_eq 0 "$(cat "$(mh_log 1)" "$(mh_log 2)" | grep -c 'host host3')" "nobody reported host3 lost"
for h in 1 2; do
	mh_stop "$h" || fail "host $h: b2bua exited $? on SIGTERM"
done
log "PASS"
