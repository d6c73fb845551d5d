#!/bin/bash
#
# flow_10_forward_noanswer — call flow 10, call forwarding on no answer.
#
# Local users bob (fwd_noanswer = sip:carol@domain, fwd_noanswer_timeout =
# 2) and carol, registered by their own sipp user agents; the caller is a
# trusted source.  bob rings and never answers: after ~2 s we CANCEL his
# leg (he answers 200 and 487, we ACK), and INVITE carol on a new B-leg with
# "Diversion: <sip:bob@domain>;reason=no-answer".  carol waits 1.5 s before
# ringing: meanwhile `show calls` says FORWARDING with her as the forward
# target.  She answers; the caller, who heard ringing all along and never a
# failure, talks 1 s and hangs up.  The CDR names bob as the dialled party,
# carol as the one who answered and the forward target.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=20
BOB_PORT=$UAS_PORT
CAROL_PORT=$((UAS_PORT + 1))
redis_start
registrar_config
CFG_EXTRA="$CFG_EXTRA
trusted = ( \"$ADDR\" );"
b2b_start
wait_for 5 redis_up || fail "the workers did not connect to Redis"

CAROL_URI="sip:carol@$ADDR"
add_user bob bob-pw --no-answer "$CAROL_URI" --timeout 2
add_user carol carol-pw
register_as reg_bob bob bob-pw $BOB_PORT
register_as reg_carol carol carol-pw $CAROL_PORT

uas_start bob uas_ring_forever -m 1
uas_start carol flow_10_uas_slow -m 1 -p $CAROL_PORT -d 1500
uac_start uac flow_10_uac -m 1 -s bob -d 1000

wait_state 2 'length == 1 and .[0].state == "RINGING" and .[0].forward_target == null' \
	"bob RINGING, not forwarded yet"
wait_state 4 "length == 1 and .[0].state == \"FORWARDING\" and .[0].forward_target == \"$CAROL_URI\"" \
	"FORWARDING to $CAROL_URI"
cli_json calls '.[0]' >"$T/call.json"
wait_state 4 'length == 1 and .[0].state == "ANSWERED"' "ANSWERED (by carol)"
assert_eq "$CAROL_URI" "$(call_field true forward_target)" "show calls: forward_target kept"

sipp_wait uac || fail "uac exited $?"
uas_wait bob
uas_wait carol
assert_sipp_ok uac 1
assert_sipp_ok bob 1
assert_sipp_ok carol 1

assert_seq "$T/uac.msg" "caller" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 200/INVITE" "sent ACK" \
	"sent BYE" "recv 200/BYE"
assert_eq 2 "$(grep -c '^SIP/2.0 180 ' "$T/uac.msg")" \
	"caller: 180 relayed twice (bob's, then carol's ringing)"
assert_seq "$T/bob.msg" "bob (no answer)" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "recv CANCEL" "sent 200/CANCEL" \
	"sent 487/INVITE" "recv ACK"
assert_seq "$T/carol.msg" "carol (forward target)" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK" \
	"recv BYE" "sent 200/BYE"
rang=$(msg_time_ms "$T/bob.msg" sent 180)
cancelled=$(msg_time_ms "$T/bob.msg" recv CANCEL)
assert_between 1800 2800 $((cancelled - rang)) "bob's CANCEL after fwd_noanswer_timeout (ms)"
forwarded=$(msg_time_ms "$T/carol.msg" recv INVITE)
assert_between 0 500 $((forwarded - cancelled)) "carol's INVITE right after bob's CANCEL (ms)"
assert_eq "<sip:bob@$ADDR>;reason=no-answer;counter=1" \
	"$(msg_header "$T/carol.msg" recv INVITE Diversion)" "carol's INVITE: Diversion"
assert_eq "" "$(msg_header "$T/bob.msg" recv INVITE Diversion)" "bob's INVITE: no Diversion"
assert_eq "sip:carol@$ADDR:$CAROL_PORT" "$(request_uri "$T/carol.msg" recv INVITE)" \
	"carol's INVITE goes to her registered contact"
assert_eq "$(msg_body "$T/uac.msg" sent INVITE)" "$(msg_body "$T/carol.msg" recv INVITE)" \
	"the caller's offer reached carol unchanged"
assert_no_leak "$T/uac.msg" "$T/bob.msg"
assert_no_leak "$T/uac.msg" "$T/carol.msg"

wait_for 5 calls_empty || fail "show calls not empty after the call: $(cli show calls)"
wait_cdrs 1
assert_cdr_fields 0
assert_cdr_id 0 "$(jq -r .id "$T/call.json")" "$(jq -r .worker "$T/call.json")"
assert_cdr 0 "a_call_id=$(call_ids "$T/uac.msg" sent)" \
	"b_call_id=$(call_ids "$T/carol.msg" recv)" \
	"caller=$(from_uri "$T/uac.msg")" "callee=sip:bob@$ADDR:$SIP_PORT" \
	"answered_by=sip:carol@$ADDR:$CAROL_PORT" "forwarded_to=$CAROL_URI" \
	"disposition=ANSWERED" "sip_code=200" "hangup_by=caller" "host=$(node_id)"
assert_cdr_times 0
assert_between 3200 4500 $(($(cdr_get 0 answer_ms) - $(cdr_get 0 ring_ms))) \
	"CDR: answered ~3.5 s after the first ringing (2 s bob + 1.5 s carol)"
assert_between 800 1800 "$(cdr_get 0 billable_ms)" "CDR billable_ms (1 s with carol)"
assert_grep 'forwarding \(no-answer\) from .bob.' "$T/b2bua.log" "the daemon logged the forwarding"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
