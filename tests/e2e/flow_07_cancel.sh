#!/bin/bash
#
# flow_07_cancel — call flow 7, the caller gives up (CANCEL), and the race
# of a CANCEL with the callee's 200.
#
#   1. The callee rings; the caller's CANCEL gets 200 from us at once, the
#      callee gets a CANCEL in its INVITE's transaction, answers 200 and
#      487; we ACK that 487 and relay 487 to the caller, who ACKs it.  One
#      CDR: CANCELLED, 487, rang but never answered, hung up by the caller.
#   2. A CANCEL crossing the callee's 200, made to happen every time:
#      a. on the B-leg (our CANCEL and the callee's 200 cross): the call is
#         cancelled on both legs - the caller gets 487, the callee's
#         answered dialog is ACKed and released with BYE; CDR CANCELLED;
#      b. on the A-leg (our relayed 200 and the caller's CANCEL cross): the
#         call is answered on both legs - the CANCEL gets 481, the caller
#         ACKs and hangs up, the callee gets ACK and BYE; CDR ANSWERED.
#      Each time exactly one CDR.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=25
redis_start
b2b_start

# --- 1. a plain CANCEL
uas_start uas uas_ring_forever -m 1
uac_run uac uac_cancel -m 1
uas_wait uas
assert_sipp_ok uac 1
assert_sipp_ok uas 1
assert_seq "$T/uac.msg" "caller (A-leg)" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "sent CANCEL" "recv 200/CANCEL" \
	"recv 487/INVITE" "sent ACK"
assert_seq "$T/uas.msg" "callee (B-leg)" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "recv CANCEL" "sent 200/CANCEL" \
	"sent 487/INVITE" "recv ACK"
assert_eq "$(msg_header "$T/uas.msg" recv INVITE Via | grep -o 'branch=[^;]*')" \
	"$(msg_header "$T/uas.msg" recv CANCEL Via | grep -o 'branch=[^;]*')" \
	"the callee's CANCEL is in its INVITE's transaction"
assert_no_leak "$T/uac.msg" "$T/uas.msg"
wait_cdrs 1
assert_cdr_fields 0
assert_match "^$(node_id)-w[01]-[0-9a-f]+-[0-9]+\$" "$(cdr_get 0 id)" "CDR[0].id"
assert_cdr 0 "a_call_id=$(call_ids "$T/uac.msg" sent)" "b_call_id=$(call_ids "$T/uas.msg" recv)" \
	"caller=$(from_uri "$T/uac.msg")" "callee=sip:1000@$ADDR:$SIP_PORT" \
	"answered_by=" "forwarded_to=" "disposition=CANCELLED" "sip_code=487" \
	"hangup_by=caller" "host=$(node_id)" "answer_ms=0" "billable_ms=0"
assert_match '^[01]$' "$(cdr_get 0 worker)" "CDR[0].worker"
assert_cdr_times 0
[ "$(cdr_get 0 ring_ms)" != 0 ] || fail "CDR ring_ms is 0 though the callee rang"
rcli DEL "$CDR_STREAM" >/dev/null

# --- 2. a CANCEL crossing the callee's 200, on either leg
# (sipp -pause_msg_ign: the peer does not see what arrives during its pause,
# as if it were still on the wire, so each crossing happens every time.)

# 2a. On the B-leg: the caller cancels 300 ms after the 180; our CANCEL
# reaches the callee, which answers 200 anyway at 600 ms.  The caller's
# CANCEL was accepted (200), so the caller must get 487 and never a 200; the
# callee's dialog must be confirmed and released (ACK, BYE).
uas_start uas2a flow_07_uas_answer_late -m 1 -pause_msg_ign
uac_run uac2a uac_cancel -m 1
uas_wait uas2a
assert_sipp_ok uac2a 1
assert_sipp_ok uas2a 1
assert_seq "$T/uac2a.msg" "2a caller" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "sent CANCEL" "recv 200/CANCEL" \
	"recv 487/INVITE" "sent ACK"
seq_of "$T/uas2a.msg" | grep -v '/CANCEL$' | grep -vx 'recv CANCEL' >"$T/uas2a.seq"
assert_eq "$(printf '%s\n' "recv INVITE" "sent 100/INVITE" "sent 180/INVITE" \
	"sent 200/INVITE" "recv ACK" "recv BYE" "sent 200/BYE")" "$(cat "$T/uas2a.seq")" \
	"2a callee: answered, then ACKed and released by us"
assert_ge 1 "$(msg_count "$T/uas2a.msg" recv CANCEL)" "2a callee: our CANCEL reached it"
[ "$(msg_time_ms "$T/uas2a.msg" recv CANCEL)" -le "$(msg_time_ms "$T/uas2a.msg" sent 200)" ] ||
	fail "2a: the callee's 200 left before our CANCEL arrived: no crossing"
log "ok: 2a: our CANCEL and the callee's 200 crossed on the B-leg"
assert_no_leak "$T/uac2a.msg" "$T/uas2a.msg"
wait_for 5 calls_empty || fail "show calls not empty after 2a: $(cli show calls)"
wait_cdrs 1
assert_cdr_fields 0
assert_cdr 0 "a_call_id=$(call_ids "$T/uac2a.msg" sent)" \
	"b_call_id=$(call_ids "$T/uas2a.msg" recv)" "answered_by=" "forwarded_to=" \
	"disposition=CANCELLED" "sip_code=487" "hangup_by=caller" "answer_ms=0" "billable_ms=0" \
	"host=$(node_id)"
assert_cdr_times 0
rcli DEL "$CDR_STREAM" >/dev/null

# 2b. On the A-leg: the callee answers at once; the 200 we relay crosses the
# caller's CANCEL (sent 300 ms after the 180, not having seen the 200).  The
# call is answered: the CANCEL gets 481, the caller ACKs the (retransmitted)
# 200 and hangs up; both legs see a normal call released by BYE.
uas_start uas2b uas_basic -m 1
uac_run uac2b flow_07_uac_cancel_late -m 1 -pause_msg_ign
uas_wait uas2b
assert_sipp_ok uac2b 1
assert_sipp_ok uas2b 1
assert_seq "$T/uac2b.msg" "2b caller" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 200/INVITE" "sent CANCEL" \
	"recv 481/CANCEL" "sent ACK" "sent BYE" "recv 200/BYE"
[ "$(msg_time_ms "$T/uac2b.msg" recv 200)" -le "$(msg_time_ms "$T/uac2b.msg" sent CANCEL)" ] ||
	fail "2b: the caller's CANCEL left before our 200 arrived: no crossing"
log "ok: 2b: our 200 and the caller's CANCEL crossed on the A-leg"
assert_seq "$T/uas2b.msg" "2b callee" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK" \
	"recv BYE" "sent 200/BYE"
assert_no_leak "$T/uac2b.msg" "$T/uas2b.msg"
wait_for 5 calls_empty || fail "show calls not empty after 2b: $(cli show calls)"
wait_cdrs 1
assert_cdr_fields 0
assert_cdr 0 "a_call_id=$(call_ids "$T/uac2b.msg" sent)" \
	"b_call_id=$(call_ids "$T/uas2b.msg" recv)" \
	"answered_by=sip:1000@$ADDR:$UAS_PORT;transport=udp" "forwarded_to=" \
	"disposition=ANSWERED" "sip_code=200" "hangup_by=caller" "host=$(node_id)"
assert_cdr_times 0
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
