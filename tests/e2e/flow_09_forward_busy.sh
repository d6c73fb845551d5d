#!/bin/bash
#
# flow_09_forward_busy — call flow 9, call forwarding on busy, and a
# forwarding loop.
#
# Local users bob (fwd_busy = carol) and carol, each registered by its own
# sipp user agent (REGISTER with digest); the caller is a trusted source.
#   1. bob answers 486: we ACK it and, instead of relaying it, send a new
#      B-leg INVITE to carol carrying "Diversion: <sip:bob@domain>;
#      reason=user-busy".  The caller sees only 100, 180 and 200 (carol's),
#      never the 486.  While the call is up `show calls` has forward_target
#      carol; the CDR names bob as the dialled party and carol as the one
#      who answered and the forward target.
#   2. With carol forwarding back to bob (fwd_busy = bob) and both busy, the
#      chain loops: the call ends with 482 after one INVITE to each, and
#      one CDR (FAILED, 482).

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

add_user bob bob-pw --busy carol
add_user carol carol-pw
register_as reg_bob bob bob-pw $BOB_PORT
register_as reg_carol carol carol-pw $CAROL_PORT

# --- 1. busy, forwarded to carol
uas_start bob uas_busy -m 1
uas_start carol uas_basic -m 1 -p $CAROL_PORT
uac_start uac uac_basic -m 1 -s bob -d 1500
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "1: the call ANSWERED (by carol)"
cli_json calls '.[0]' >"$T/call.json"
assert_eq carol "$(jq -r .forward_target "$T/call.json")" "show calls: forward_target"
assert_eq "sip:bob@$ADDR:$SIP_PORT" "$(jq -r .callee "$T/call.json")" "show calls: callee"
sipp_wait uac || fail "uac exited $?"
uas_wait bob
uas_wait carol
assert_sipp_ok uac 1
assert_sipp_ok bob 1
assert_sipp_ok carol 1

assert_seq "$T/uac.msg" "1: caller" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 200/INVITE" "sent ACK" \
	"sent BYE" "recv 200/BYE"
assert_seq "$T/bob.msg" "1: bob (busy)" \
	"recv INVITE" "sent 100/INVITE" "sent 486/INVITE" "recv ACK"
assert_seq "$T/carol.msg" "1: carol (forward target)" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK" \
	"recv BYE" "sent 200/BYE"
assert_eq "<sip:bob@$ADDR>;reason=user-busy;counter=1" \
	"$(msg_header "$T/carol.msg" recv INVITE Diversion)" "1: carol's INVITE: Diversion"
assert_eq "" "$(msg_header "$T/bob.msg" recv INVITE Diversion)" "1: bob's INVITE: no Diversion"
assert_eq "sip:carol@$ADDR:$CAROL_PORT" \
	"$(request_uri "$T/carol.msg" recv INVITE)" \
	"1: carol's INVITE goes to her registered contact"
assert_eq "$(msg_body "$T/uac.msg" sent INVITE)" "$(msg_body "$T/carol.msg" recv INVITE)" \
	"1: the caller's offer reached carol unchanged"
assert_no_leak "$T/uac.msg" "$T/bob.msg"
assert_no_leak "$T/uac.msg" "$T/carol.msg"
[ "$(call_ids "$T/bob.msg" recv)" != "$(call_ids "$T/carol.msg" recv)" ] ||
	fail "1: bob and carol got the same B-leg Call-ID"
log "ok: 1: a new B-leg dialog for carol"

wait_for 5 calls_empty || fail "show calls not empty after call 1: $(cli show calls)"
wait_cdrs 1
assert_cdr_fields 0
assert_cdr_id 0 "$(jq -r .id "$T/call.json")" "$(jq -r .worker "$T/call.json")"
assert_cdr 0 "a_call_id=$(call_ids "$T/uac.msg" sent)" \
	"b_call_id=$(call_ids "$T/carol.msg" recv)" \
	"caller=$(from_uri "$T/uac.msg")" "callee=sip:bob@$ADDR:$SIP_PORT" \
	"answered_by=sip:carol@$ADDR:$CAROL_PORT" "forwarded_to=carol" \
	"disposition=ANSWERED" "sip_code=200" "hangup_by=caller" "host=$(node_id)"
assert_cdr_times 0
assert_between 1300 2500 "$(cdr_get 0 billable_ms)" "1: CDR billable_ms (1.5 s with carol)"
rcli DEL "$CDR_STREAM" >/dev/null

# --- 2. a forwarding loop: bob -> carol -> bob
user_forward carol --busy bob
uas_start bob2 uas_busy -m 1
uas_start carol2 uas_busy -m 1 -p $CAROL_PORT
uac_run uac2 uac_expect_code -m 1 -s bob -key maxfwd 70 -key extra_hdr "X-Test: loop"
uas_wait bob2
uas_wait carol2
assert_seq "$T/uac2.msg" "2: caller" \
	"sent INVITE" "recv 100/INVITE" "recv 482/INVITE" "sent ACK"
assert_seq "$T/bob2.msg" "2: bob" "recv INVITE" "sent 100/INVITE" "sent 486/INVITE" "recv ACK"
assert_seq "$T/carol2.msg" "2: carol" "recv INVITE" "sent 100/INVITE" "sent 486/INVITE" \
	"recv ACK"
assert_eq "<sip:bob@$ADDR>;reason=user-busy;counter=1" \
	"$(msg_header "$T/carol2.msg" recv INVITE Diversion)" "2: carol's INVITE: Diversion"
wait_for 5 calls_empty || fail "show calls not empty after call 2: $(cli show calls)"
wait_cdrs 1
assert_cdr_fields 0
assert_cdr 0 "a_call_id=$(call_ids "$T/uac2.msg" sent)" \
	"caller=$(from_uri "$T/uac2.msg")" "callee=sip:bob@$ADDR:$SIP_PORT" \
	"answered_by=" "disposition=FAILED" "sip_code=482" "hangup_by=system" \
	"answer_ms=0" "billable_ms=0" "host=$(node_id)"
assert_match '^(carol|bob)$' "$(cdr_get 0 forwarded_to)" "2: CDR forwarded_to (a user of the loop)"
assert_cdr_times 0
assert_grep 'forwarding loops back to .bob.' "$T/b2bua.log" "2: the daemon logged the loop"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
