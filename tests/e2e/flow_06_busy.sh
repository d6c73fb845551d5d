#!/bin/bash
#
# flow_06_busy — call flow 6, the callee is busy.
#
# The callee answers 100 then 486: the B2BUA ACKs the 486 on the B-leg
# (its own ACK, in the B-leg INVITE's transaction), relays 486 to the
# caller, and the caller's ACK ends the A-leg transaction.  Neither side
# sees anything else; the call leaves the table; one CDR: BUSY, 486, never
# rang nor answered, nothing billed, hung up by the callee.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=20
redis_start
b2b_start

uas_start uas uas_busy -m 1
uac_run uac uac_busy -m 1
uas_wait uas
assert_sipp_ok uac 1
assert_sipp_ok uas 1

assert_seq "$T/uac.msg" "caller (A-leg)" \
	"sent INVITE" "recv 100/INVITE" "recv 486/INVITE" "sent ACK"
assert_seq "$T/uas.msg" "callee (B-leg)" \
	"recv INVITE" "sent 100/INVITE" "sent 486/INVITE" "recv ACK"
# Each ACK is in its own leg's INVITE transaction (same branch).
assert_eq "$(msg_header "$T/uac.msg" sent INVITE Via | grep -o 'branch=[^;]*')" \
	"$(msg_header "$T/uac.msg" sent ACK Via | grep -o 'branch=[^;]*')" "A-leg ACK branch"
assert_eq "$(msg_header "$T/uas.msg" recv INVITE Via | grep -o 'branch=[^;]*')" \
	"$(msg_header "$T/uas.msg" recv ACK Via | grep -o 'branch=[^;]*')" "B-leg ACK branch"
assert_no_leak "$T/uac.msg" "$T/uas.msg"
assert_eq 0 "$(sipp_stat uas 'Retransmissions(C)')" "uas: 486 ACKed at once (no retransmission)"

wait_for 5 calls_empty || fail "show calls not empty after the call: $(cli show calls)"

wait_cdrs 1
assert_cdr_fields 0
assert_match "^$(node_id)-w[01]-[0-9a-f]+-[0-9]+\$" "$(cdr_get 0 id)" "CDR[0].id"
assert_cdr 0 "a_call_id=$(call_ids "$T/uac.msg" sent)" "b_call_id=$(call_ids "$T/uas.msg" recv)" \
	"caller=$(from_uri "$T/uac.msg")" "callee=sip:1000@$ADDR:$SIP_PORT" \
	"answered_by=" "forwarded_to=" \
	"disposition=BUSY" "sip_code=486" "hangup_by=callee" "host=$(node_id)" \
	"ring_ms=0" "answer_ms=0" "billable_ms=0"
assert_match '^[01]$' "$(cdr_get 0 worker)" "CDR[0].worker"
assert_cdr_times 0
assert_eq 1 "$(stat_of 'final_codes["486"]')" "stats: final code 486"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
