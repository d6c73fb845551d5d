#!/bin/bash
#
# crash_unacked — a worker dies after its callees answered but before their
# callers had the 2xx: each successor answers those callers again with the
# callee's next 2xx, the calls go on, and each is billed from that answer.
#
# The test runs in a network namespace of its own (unshare -n: loopback
# only, nothing outside it is touched), where an nftables rule drops every
# "SIP/2.0 200" datagram to the callers' port.  The callers get 100 and
# 180, never a 200; the callees answer at once, so the table shows the
# calls ANSWERED while no caller has its answer.  The workers that own them
# are killed with SIGKILL: the 2xx to the callers is lost with them, as when
# a process dies with it queued.  Then the rule goes.  The callees, never
# ACKed (B is ACKed after the caller's ACK), repeat their 2xx, which the
# successors have no transaction for.  Checked:
#   - each successor logged its calls as waiting for the callee's 2xx, then
#     answered each caller again;
#   - every caller got a 200, ACKed it, talked 10 s and hung up: sipp
#     passes on both sides, every callee got its ACK and its BYE;
#   - each call ends with one CDR, ANSWERED, hung up by the caller, whose
#     answer time is after the kill (the caller was connected then) and
#     whose billed time covers the 10 s of talk.
# Without the successor's second answer the callers time out without a 200
# and the calls stay ANSWERED, billed until max_call_duration.
#
# Then the same with the callers' ACKs through and the ACKs to the callees
# dropped: the calls are confirmed when their owners die, the callees
# repeat their 2xx to the successors, and each must get its ACK again
# (every 2xx is ACKed, RFC 3261 13.2.2.4); before, NTA aborted the
# successor on an ACK without its INVITE transaction, or the 2xx went
# unanswered.

. "$(dirname "$0")/netns_lib.sh"
netns_enter "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=40
redis_start
b2b_start

N=4
# The port uac_start gives the next sipp UAC.
UAC_PORT=$((_UAC_PORT_NEXT + 1))

nft_drop b2bua_crash_unacked output "$UAC_PORT" 96 0x5349502f322e302032303020   # "SIP/2.0 200 "

uas_start uas uas_basic -m $N
uac_start uac uac_long -m $N -r 20
wait_state 10 "length == $N and all(.[]; .state == \"ANSWERED\")" "$N calls ANSWERED"
_lost() { [ "$(nft_dropped b2bua_crash_unacked)" -ge "$N" ]; }
wait_for 5 _lost || fail "the 200s to the callers were not dropped: $(nft_dropped b2bua_crash_unacked)"
assert_eq 0 "$(msg_count "$T/uac.msg" recv 200)" "200s the callers got before the kill"

KILL_MS=$(date +%s%3N)
kill_unacked_owners "$N"
nft_undrop b2bua_crash_unacked

_answered_again() {
	[ "$(grep -c "its caller is answered again" "$T/b2bua.log")" -ge "$N" ]
}
wait_for 15 _answered_again ||
	fail "callers answered again: $(grep -c "its caller is answered again" "$T/b2bua.log") of $N"

sipp_wait uac || fail "uac exited $? (a caller had no 200, or its call failed)"
uas_wait uas
assert_sipp_ok uac $N
assert_sipp_ok uas $N
assert_eq "$N" "$(msg_count "$T/uac.msg" recv 200/INVITE)" "every caller got its 200"
assert_eq "$N" "$(msg_count "$T/uas.msg" recv ACK)" "every callee got its ACK"
assert_eq "$N" "$(msg_count "$T/uas.msg" recv BYE)" "every callee got its BYE"
assert_eq "$N" "$(msg_count "$T/uac.msg" recv 200/BYE)" "every caller's BYE was answered"
wait_for 5 calls_empty || fail "calls left in the table: $(cli show calls)"
assert_no_grep "killed by signal [^9]" "$T/b2bua.log" "workers that died other than by the test's SIGKILL"

wait_cdrs $N
assert_eq "$N" "$(jq '[.[] | select(.disposition == "ANSWERED" and .hangup_by == "caller")] | length' "$CDR_JSON")" \
	"$N CDRs ANSWERED, hung up by the caller"
assert_eq "$N" "$(jq --argjson k "$KILL_MS" '[.[] | select((.answer_ms | tonumber) > $k)] | length' "$CDR_JSON")" \
	"CDRs answered after the kill (billed from the second answer)"
assert_eq "$N" "$(jq '[.[] | select((.billable_ms | tonumber) >= 10000)] | length' "$CDR_JSON")" \
	"CDRs billing the 10 s of talk"

# ------------------------------------------------------------ the callee's ACK lost
# Now the callers ACK, and the ACK to each callee is dropped: the calls are
# confirmed in the table (their records gone) when their owners are killed,
# and the callees repeat their 2xx to the successors, which must ACK it.
log "second part: the ACKs to the callees are lost"
nft_drop b2bua_crash_unacked output "$UAS_PORT" 32 0x41434b20   # "ACK "
uas_start uas2 uas_basic -m $N
uac_start uac2 uac_long -m $N -r 20
_callers_acked() { [ "$(msg_count "$T/uac2.msg" sent ACK)" -ge "$N" ]; }
wait_for 10 _callers_acked || fail "callers that ACKed: $(msg_count "$T/uac2.msg" sent ACK) of $N"
# The callers' ACKs went to the workers' own ports: a worker that answers
# an OPTIONS there has handled them, so its calls are confirmed.
for ((i = 0; i < CFG_WORKERS; i++)); do
	udp_options_ok $((WORKER_PORT_BASE + i)) || fail "worker $i's own port does not answer"
done
assert_ge "$N" "$(nft_dropped b2bua_crash_unacked)" "ACKs to the callees dropped"
assert_eq "$N" "$(cli_json calls 'length')" "calls in the table before the kill"
waits=$(grep -c "answered calls taken over wait for their callee's 2xx" "$T/b2bua.log")
kill_owners 5 "took over [0-9]+ answered calls"
assert_eq "$waits" "$(grep -c "answered calls taken over wait for their callee's 2xx" "$T/b2bua.log")" \
	"takeovers that wait for a 2xx (every caller had ACKed)"
nft_undrop b2bua_crash_unacked
sipp_wait uac2 || fail "uac2 exited $?"
uas_wait uas2
assert_sipp_ok uac2 $N
assert_sipp_ok uas2 $N
assert_eq "$N" "$(msg_calls "$T/uas2.msg" recv ACK)" \
	"callees that got an ACK (from the successors)"
assert_ge "$N" "$(grep -c "its callee repeats its 2xx: our ACK was lost, sent again" "$T/b2bua.log")" \
	"2xx ACKed again by the successors"
assert_eq "$N" "$(msg_count "$T/uas2.msg" recv BYE)" "every callee got its BYE"
wait_for 5 calls_empty || fail "calls left in the table: $(cli show calls)"
assert_no_grep "killed by signal [^9]" "$T/b2bua.log" "workers that died other than by the test's SIGKILL"
wait_cdrs $((2 * N))
assert_eq "$((2 * N))" "$(jq '[.[] | select(.disposition == "ANSWERED" and .hangup_by == "caller" and (.billable_ms | tonumber) >= 10000)] | length' "$CDR_JSON")" \
	"CDRs ANSWERED, hung up by the caller, billing the 10 s of talk"
log "ok: crash_unacked"
