#!/bin/bash
#
# flow_03_basic — call flow 3, the basic call, end to end with its CDR.
#
# One call over a static route: sipp caller → b2bua → sipp callee, 2 s of
# talk, the caller hangs up.  Asserted:
#   - each party saw exactly its leg's messages, in order (the caller: 100
#     from us at once, 180, 200, its ACK, BYE, 200; the callee: INVITE, its
#     100/180/200, our ACK, BYE) and the callee got the caller's SDP
#     unchanged, the caller the callee's;
#   - Max-Forwards was decremented, and nothing of the A-leg's topology
#     reached the B-leg;
#   - while the call is up `show calls` lists it ANSWERED with both
#     Call-IDs, caller and callee, both legs on udp;
#   - afterwards the table is empty and the stream holds exactly one CDR
#     with every field right.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

redis_start
b2b_start

uas_start uas uas_basic -m 1
uac_start uac uac_basic -m 1 -d 2000

# --- during the call
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "the call ANSWERED"
cli_json calls '.[0]' >"$T/call.json"
assert_eq "sip:1000@$ADDR:$SIP_PORT" "$(jq -r .callee "$T/call.json")" "show calls: callee"
# The harness gives the first sipp caller port 5101.
assert_eq "sip:sipp@$ADDR:5101" "$(jq -r .caller "$T/call.json")" "show calls: caller"
assert_eq null "$(jq -r .held_by "$T/call.json")" "show calls: held_by"
assert_eq null "$(jq -r .forward_target "$T/call.json")" "show calls: forward_target"
cli show calls >"$T/calls.txt" || fail "b2bua-cli show calls failed"
assert_grep "ANSWERED" "$T/calls.txt" "show calls text: ANSWERED"
assert_leg_transports "$T/call.json" udp udp
assert_eq "udp udp" "$(awk -v id="$(jq -r .id "$T/call.json")" '$1 == id { print $(NF - 1), $NF }' \
	"$T/calls.txt")" "show calls text: A_TRANSPORT, B_TRANSPORT"

sipp_wait uac || fail "uac exited $?"
uas_wait uas
assert_sipp_ok uac 1
assert_sipp_ok uas 1

# --- what each party saw
assert_seq "$T/uac.msg" "caller (A-leg)" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 200/INVITE" "sent ACK" \
	"sent BYE" "recv 200/BYE"
assert_seq "$T/uas.msg" "callee (B-leg)" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK" \
	"recv BYE" "sent 200/BYE"
assert_eq "$(msg_body "$T/uac.msg" sent INVITE)" "$(msg_body "$T/uas.msg" recv INVITE)" \
	"the offer reached the callee unchanged"
assert_eq "$(msg_body "$T/uas.msg" sent 200/INVITE)" "$(msg_body "$T/uac.msg" recv 200/INVITE)" \
	"the answer reached the caller unchanged"
assert_eq 69 "$(msg_header "$T/uas.msg" recv INVITE Max-Forwards)" "B-leg Max-Forwards"
assert_no_leak "$T/uac.msg" "$T/uas.msg"
# The caller's 200 names us as Contact (its ACK and BYE came to us, else the
# callee would not have had them), never the callee.
assert_no_grep "$ADDR:$UAS_PORT" <(msg_header "$T/uac.msg" recv 200 Contact) \
	"the caller's 200 does not carry the callee's Contact"

A_CID=$(call_ids "$T/uac.msg" sent)
B_CID=$(call_ids "$T/uas.msg" recv)
assert_eq "$A_CID" "$(jq -r .a_call_id "$T/call.json")" "show calls: a_call_id"
assert_eq "$B_CID" "$(jq -r .b_call_id "$T/call.json")" "show calls: b_call_id"

# --- after the call
wait_for 5 calls_empty || fail "show calls not empty after the call: $(cli show calls)"
log "ok: show calls empty after the call"

wait_cdrs 1
assert_cdr_fields 0
assert_cdr_id 0 "$(jq -r .id "$T/call.json")" "$(jq -r .worker "$T/call.json")"
assert_cdr 0 \
	"a_call_id=$A_CID" "b_call_id=$B_CID" \
	"caller=$(from_uri "$T/uac.msg")" "callee=sip:1000@$ADDR:$SIP_PORT" \
	"answered_by=sip:1000@$ADDR:$UAS_PORT;transport=udp" "forwarded_to=" \
	"disposition=ANSWERED" "sip_code=200" "hangup_by=caller" \
	"host=$(node_id)" "worker=$(jq -r .worker "$T/call.json")" \
	"a_transport=udp" "b_transport=udp"
assert_cdr_times 0
assert_between 1800 3500 "$(cdr_get 0 billable_ms)" "CDR billable_ms (2 s of talk)"
[ "$(cdr_get 0 ring_ms)" != 0 ] || fail "CDR ring_ms is 0 though the callee rang"
log "ok: CDR ring_ms set"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
