#!/bin/bash
#
# flow_08_timeout — call flow 8, no answer: the callee gives up (408), or
# our own timer does.
#
#   1. The callee rings, then answers 408 itself: we ACK it on the B-leg and
#      relay 408 to the caller, who ACKs it.  CDR NO_ANSWER, 408, hung up by
#      the callee.
#   2. The callee rings forever; invite_timeout = 3: after ~3 s we CANCEL
#      the B-leg (the callee answers 200 and 487, we ACK) and answer the
#      caller 408.  While it rings, `show calls` says RINGING.  CDR
#      NO_ANSWER, 408, ended by us (system), after about 3 s.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=20
CFG_INVITE_TIMEOUT=3
redis_start
b2b_start

# --- 1. the callee's 408
uas_start uas1 flow_08_uas_408 -m 1 -d 500
uac_run uac1 flow_08_uac -m 1
uas_wait uas1
assert_sipp_ok uac1 1
assert_sipp_ok uas1 1
assert_seq "$T/uac1.msg" "1: caller" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 408/INVITE" "sent ACK"
assert_seq "$T/uas1.msg" "1: callee" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "sent 408/INVITE" "recv ACK"
assert_eq "$(msg_header "$T/uas1.msg" recv INVITE Via | grep -o 'branch=[^;]*')" \
	"$(msg_header "$T/uas1.msg" recv ACK Via | grep -o 'branch=[^;]*')" \
	"1: our ACK is in the callee's INVITE transaction"
assert_no_leak "$T/uac1.msg" "$T/uas1.msg"
wait_cdrs 1
assert_cdr_fields 0
assert_match "^$(node_id)-w[01]-[0-9a-f]+-[0-9]+\$" "$(cdr_get 0 id)" "CDR[0].id"
assert_cdr 0 "a_call_id=$(call_ids "$T/uac1.msg" sent)" "b_call_id=$(call_ids "$T/uas1.msg" recv)" \
	"caller=$(from_uri "$T/uac1.msg")" "callee=sip:1000@$ADDR:$SIP_PORT" \
	"answered_by=" "forwarded_to=" "disposition=NO_ANSWER" "sip_code=408" \
	"hangup_by=callee" "host=$(node_id)" "answer_ms=0" "billable_ms=0"
assert_match '^[01]$' "$(cdr_get 0 worker)" "CDR[0].worker"
assert_cdr_times 0
assert_between 400 1500 $(($(cdr_get 0 end_ms) - $(cdr_get 0 ring_ms))) \
	"1: rang ~500 ms before the 408"
rcli DEL "$CDR_STREAM" >/dev/null

# --- 2. our own timer (invite_timeout = 3)
uas_start uas2 uas_ring_forever -m 1
uac_start uac2 flow_08_uac -m 1
wait_state 2 'length == 1 and .[0].state == "RINGING"' "2: the call RINGING"
sipp_wait uac2 || fail "uac2 exited $?"
uas_wait uas2
assert_sipp_ok uac2 1
assert_sipp_ok uas2 1
assert_seq "$T/uac2.msg" "2: caller" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 408/INVITE" "sent ACK"
assert_seq "$T/uas2.msg" "2: callee" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "recv CANCEL" "sent 200/CANCEL" \
	"sent 487/INVITE" "recv ACK"
assert_no_leak "$T/uac2.msg" "$T/uas2.msg"
wait_for 5 calls_empty || fail "show calls not empty after the call: $(cli show calls)"
wait_cdrs 1
assert_cdr_fields 0
assert_cdr 0 "a_call_id=$(call_ids "$T/uac2.msg" sent)" "b_call_id=$(call_ids "$T/uas2.msg" recv)" \
	"caller=$(from_uri "$T/uac2.msg")" "callee=sip:1000@$ADDR:$SIP_PORT" \
	"answered_by=" "forwarded_to=" "disposition=NO_ANSWER" "sip_code=408" \
	"hangup_by=system" "host=$(node_id)" "answer_ms=0" "billable_ms=0"
assert_cdr_times 0
assert_between 2800 4500 $(($(cdr_get 0 end_ms) - $(cdr_get 0 start_ms))) \
	"2: the call lasted invite_timeout (3 s)"
assert_eq 2 "$(stat_of 'final_codes["408"]')" "stats: final code 408 twice"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
