#!/bin/bash
#
# crash_unacked_cancel — a worker dies after its callees answered but before
# their callers had the 2xx, and the callers, still hearing only ringing,
# then hang up (CANCEL) before the callees' 2xx comes again.  Each successor
# must treat the CANCEL as the caller's: 200 for the CANCEL, 487 for the
# INVITE, the callee's 2xx ACKed and the callee released with BYE, and one
# CDR CANCELLED by the caller and not billed.  Before, the successor had no
# INVITE transaction for the CANCEL and answered 481; the caller then got
# the callee's next 2xx, had to ACK it and hang up with BYE, and was billed
# for a call it had cancelled.
#
# Like crash_unacked.sh it runs in a network namespace of its own (unshare
# -n: loopback only), where nftables rules drop "SIP/2.0 200" datagrams:
#   - to the callers' port, until the owners are killed: the callers get 100
#     and 180, never a 200, while the table shows the calls ANSWERED;
#   - to the workers' own ports, from the answer until the callers are done:
#     the callees' repeated 2xx cannot reach the successors before the
#     CANCEL does (they would answer the callers again: crash_unacked.sh).
#     This also holds back the callees' 200 for our BYE; our BYE is
#     retransmitted and completes once the rule goes.
# The callers (uac_cancel_waited.xml) CANCEL 8 s after their 180.

. "$(dirname "$0")/netns_lib.sh"
netns_enter "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=40
OK200=0x5349502f322e302032303020   # "SIP/2.0 200 "
redis_start
b2b_start

N=4
# The port uac_start gives the next sipp UAC.
UAC_PORT=$((_UAC_PORT_NEXT + 1))
OWN_PORTS="$WORKER_PORT_BASE-$((WORKER_PORT_BASE + CFG_WORKERS - 1))"

nft_drop b2bua_unacked_callers output "$UAC_PORT" 96 $OK200
uas_start uas uas_basic -m $N
uac_start uac uac_cancel_waited -m $N -r 20
wait_state 10 "length == $N and all(.[]; .state == \"ANSWERED\")" "$N calls ANSWERED"
nft_drop b2bua_unacked_own input "$OWN_PORTS" 96 $OK200
_lost() { [ "$(nft_dropped b2bua_unacked_callers)" -ge "$N" ]; }
wait_for 5 _lost || fail "the 200s to the callers were not dropped: $(nft_dropped b2bua_unacked_callers)"
assert_eq 0 "$(msg_count "$T/uac.msg" recv 200)" "200s the callers got before the kill"

kill_unacked_owners "$N"
assert_eq 0 "$(msg_count "$T/uac.msg" sent CANCEL)" "CANCELs sent before the takeover"
nft_undrop b2bua_unacked_callers

sipp_wait uac || fail "uac exited $? (a caller's CANCEL was not answered 200, or its INVITE not 487)"
assert_sipp_ok uac $N
assert_eq "$N" "$(msg_count "$T/uac.msg" recv 200/CANCEL)" "every CANCEL answered 200"
assert_eq "$N" "$(msg_count "$T/uac.msg" recv 487/INVITE)" "every INVITE answered 487"
assert_eq 0 "$(msg_count "$T/uac.msg" recv 200/INVITE)" "200s for an INVITE the callers cancelled"
assert_eq 0 "$(msg_count "$T/uac.msg" recv 481)" "481s to the callers"
assert_ge "$N" "$(grep -c "its caller cancelled: the callee is released" "$T/b2bua.log")" \
	"successors that took the CANCEL as the caller's"

nft_undrop b2bua_unacked_own
uas_wait uas
assert_sipp_ok uas $N
assert_eq "$N" "$(msg_calls "$T/uas.msg" recv ACK)" \
	"callees whose 2xx was ACKed"
assert_eq "$N" "$(msg_calls "$T/uas.msg" recv BYE)" \
	"callees released with BYE"
wait_for 5 calls_empty || fail "calls left in the table: $(cli show calls)"
assert_no_grep "killed by signal [^9]" "$T/b2bua.log" "workers that died other than by the test's SIGKILL"

wait_cdrs $N
assert_eq "$N" "$(jq '[.[] | select(.disposition == "CANCELLED" and .hangup_by == "caller" and .sip_code == "487")] | length' "$CDR_JSON")" \
	"$N CDRs CANCELLED by the caller, 487"
assert_eq "$N" "$(jq '[.[] | select(.billable_ms == "0" and (.answer_ms == "0" or .answer_ms == ""))] | length' "$CDR_JSON")" \
	"CDRs not billed (the callers never had an answer)"
log "ok: crash_unacked_cancel"
