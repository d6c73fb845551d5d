#!/bin/bash
#
# crash_unacked_linger — a worker dies between its callees' answer and its
# callers' ACK, and the callees never send their 2xx again (they send it
# once: tests/sipp/uas_2xx_once.xml).  The successors wait for a 2xx that
# does not come; when the takeover's linger (34 s) is over, silence cannot
# tell whether the caller was connected, so each successor asks the caller
# with an OPTIONS in the dialog:
#   - callers that never heard the answer (their 200s were dropped, as in
#     crash_unacked.sh; tests/sipp/uac_unheard.xml) answer 481: the callee
#     gets its ACK and a BYE, the CDR says FAILED, no code sent (0), not
#     answered, nothing billed;
#   - callers that had the 200 and ACKed it, where the ACK never reached the
#     worker (dropped on the way in, then the worker was killed;
#     tests/sipp/uac_probed.xml) answer 200: the call goes on, the callee
#     gets its ACK, and the caller's BYE ends it, ANSWERED.
# Before, every such call went on CONFIRMED after the linger: the first kind
# was billed until max_call_duration for a call its caller never heard.
#
# Runs in a network namespace of its own (unshare -n: loopback only), like
# crash_unacked.sh, for its nftables rules.

. "$(dirname "$0")/netns_lib.sh"
netns_enter "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=90
redis_start
b2b_start

N=2
# The ports uac_start gives the next two sipp UACs.
UNHEARD_PORT=$((_UAC_PORT_NEXT + 1))
OWN_PORTS="$WORKER_PORT_BASE-$((WORKER_PORT_BASE + CFG_WORKERS - 1))"

nft_drop b2bua_linger_200 output "$UNHEARD_PORT" 96 0x5349502f322e302032303020   # "SIP/2.0 200 "
nft_drop b2bua_linger_ack input "$OWN_PORTS" 32 0x41434b20                      # "ACK "
uas_start uas uas_2xx_once -m $((2 * N))
uac_start unheard uac_unheard -m $N -r 20
[ "$_UAC_PORT_NEXT" = "$UNHEARD_PORT" ] || fail "uac_start gave port $_UAC_PORT_NEXT, not $UNHEARD_PORT"
uac_start probed uac_probed -m $N -r 20
wait_state 10 "length == $((2 * N)) and all(.[]; .state == \"ANSWERED\")" "$((2 * N)) calls ANSWERED"
_acked() { [ "$(msg_count "$T/probed.msg" sent ACK)" -ge "$N" ]; }
wait_for 10 _acked || fail "callers that ACKed: $(msg_count "$T/probed.msg" sent ACK) of $N"
_lost() { [ "$(nft_dropped b2bua_linger_200)" -ge "$N" ] && [ "$(nft_dropped b2bua_linger_ack)" -ge "$N" ]; }
wait_for 5 _lost || fail "dropped: $(nft_dropped b2bua_linger_200) 200s, $(nft_dropped b2bua_linger_ack) ACKs"
assert_eq 0 "$(msg_count "$T/unheard.msg" recv 200)" "200s the unheard callers got"

kill_unacked_owners "$((2 * N))"
nft_undrop b2bua_linger_200
nft_undrop b2bua_linger_ack
assert_eq 0 "$(grep -c "asking its caller (OPTIONS)" "$T/b2bua.log")" "callers asked before the linger"

# The linger is 34 s from the takeover.
_asked() {
	[ "$(grep -c "its caller does not have the call (481" "$T/b2bua.log")" -ge "$N" ] &&
		[ "$(grep -c "its caller has the call (200" "$T/b2bua.log")" -ge "$N" ]
}
wait_for 60 _asked || fail "after the linger: $(grep -c "its caller does not have the call" "$T/b2bua.log") callers without the call, $(grep -c "its caller has the call" "$T/b2bua.log") with it, of $N each"

sipp_wait unheard || fail "unheard exited $? (no OPTIONS within 60 s, or something else came)"
sipp_wait probed || fail "probed exited $? (no OPTIONS within 60 s, or its BYE failed)"
uas_wait uas
assert_sipp_ok unheard $N
assert_sipp_ok probed $N
assert_sipp_ok uas $((2 * N))
assert_eq "$N" "$(msg_count "$T/unheard.msg" recv OPTIONS)" "OPTIONS to the callers that never heard the answer"
assert_eq "$N" "$(msg_count "$T/probed.msg" recv OPTIONS)" "OPTIONS to the callers that had it"
assert_eq 0 "$(msg_count "$T/unheard.msg" recv 200)" "200s the unheard callers got"
assert_eq "$((2 * N))" "$(msg_calls "$T/uas.msg" recv ACK)" \
	"callees that got their ACK"
assert_eq "$((2 * N))" "$(msg_calls "$T/uas.msg" recv BYE)" \
	"callees that got a BYE"
wait_for 5 calls_empty || fail "calls left in the table: $(cli show calls)"
assert_no_grep "killed by signal [^9]" "$T/b2bua.log" "workers that died other than by the test's SIGKILL"

wait_cdrs $((2 * N))
assert_eq "$N" "$(jq '[.[] | select(.disposition == "FAILED" and .sip_code == "0" and .hangup_by == "system" and .billable_ms == "0" and (.answer_ms == "0" or .answer_ms == ""))] | length' "$CDR_JSON")" \
	"CDRs FAILED, no code to the caller, not answered, not billed"
assert_eq "$N" "$(jq '[.[] | select(.disposition == "ANSWERED" and .hangup_by == "caller")] | length' "$CDR_JSON")" \
	"CDRs ANSWERED, hung up by the caller"
log "ok: crash_unacked_linger"
