#!/bin/bash
#
# tcp_callee — call flow 3 with the caller on UDP and the callee on TCP
# (issue 11, first slice: transports = ["udp", "tcp"], a route target with
# ;transport=tcp).
#
# The sipp caller sends its INVITE over UDP; the route sends the call to a
# sipp callee that listens on TCP only (-t t1); 2 s of talk, the caller
# hangs up.  Asserted:
#   - each party saw exactly its leg's messages, in order, the SDP crossed
#     unchanged both ways;
#   - the callee's INVITE came over TCP from the call's worker (Via
#     SIP/2.0/TCP on its own port) with our Contact ;transport=tcp on that
#     port; the caller's 200 has our UDP Contact;
#   - the call table during the call (A-leg udp, B-leg tcp) and the CDR
#     afterwards (a_transport udp, b_transport tcp).

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

command -v ss >/dev/null || skip "ss not found (Debian package iproute2)"

redis_start
CFG_EXTRA='transports = [ "udp", "tcp" ];'
CFG_ROUTES="{ prefix = \"1\"; target = \"sip:$ADDR:$UAS_PORT;transport=tcp\"; }"
b2b_start

# A sipp UAS on TCP: uas_start waits for a UDP socket, so start it here.
_sipp_common uas
(cd "$T" && exec timeout $((SIPP_TIMEOUT + 30)) sipp -sf "$SIPP_DIR/uas_basic.xml" \
	-i "$ADDR" -p "$UAS_PORT" -t t1 "${_SIPP_ARGS[@]}" -m 1) >"$T/uas.out" 2>&1 &
SIPP_PID[uas]=$!
_track "$!"
listening() { ss -Htln "sport = :$UAS_PORT" | grep -q "$ADDR:$UAS_PORT"; }
wait_for 5 listening || fail "sipp uas does not listen on TCP $ADDR:$UAS_PORT"

uac_start uac uac_basic -m 1 -d 2000

wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "the call ANSWERED"
cli_json calls '.[0]' >"$T/call.json"
WORKER=$(jq -r .worker "$T/call.json")
OWN=$((WORKER_PORT_BASE + WORKER))
assert_leg_transports "$T/call.json" udp tcp

sipp_wait uac || fail "uac exited $?"
uas_wait uas
assert_sipp_ok uac 1
assert_sipp_ok uas 1

assert_seq "$T/uac.msg" "caller (A-leg, UDP)" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 200/INVITE" "sent ACK" \
	"sent BYE" "recv 200/BYE"
assert_seq "$T/uas.msg" "callee (B-leg, TCP)" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK" \
	"recv BYE" "sent 200/BYE"
assert_grep "SIP/2.0/TCP $ADDR:$OWN" <(msg_header "$T/uas.msg" recv INVITE Via) \
	"the callee's INVITE: Via over TCP, own port of worker $WORKER"
assert_grep "SIP/2.0/TCP" <(msg_header "$T/uas.msg" recv BYE Via) "the callee's BYE came over TCP"
assert_grep "$ADDR:$OWN;transport=tcp" <(msg_header "$T/uas.msg" recv INVITE Contact) \
	"the callee's INVITE: our Contact, transport=tcp"
assert_grep "$ADDR:$OWN;transport=udp" <(msg_header "$T/uac.msg" recv 200 Contact) \
	"the caller's 200: our UDP Contact"
assert_eq "$(msg_body "$T/uac.msg" sent INVITE)" "$(msg_body "$T/uas.msg" recv INVITE)" \
	"the offer reached the callee unchanged"
assert_eq "$(msg_body "$T/uas.msg" sent 200/INVITE)" "$(msg_body "$T/uac.msg" recv 200/INVITE)" \
	"the answer reached the caller unchanged"
assert_no_leak "$T/uac.msg" "$T/uas.msg"

A_CID=$(call_ids "$T/uac.msg" sent)
B_CID=$(call_ids "$T/uas.msg" recv)
assert_eq "$A_CID" "$(jq -r .a_call_id "$T/call.json")" "show calls: a_call_id"
assert_eq "$B_CID" "$(jq -r .b_call_id "$T/call.json")" "show calls: b_call_id"

wait_for 5 calls_empty || fail "show calls not empty after the call: $(cli show calls)"
wait_cdrs 1
assert_cdr_fields 0
assert_cdr 0 \
	"a_call_id=$A_CID" "b_call_id=$B_CID" \
	"caller=$(from_uri "$T/uac.msg")" "callee=sip:1000@$ADDR:$SIP_PORT" \
	"disposition=ANSWERED" "sip_code=200" "hangup_by=caller" "worker=$WORKER" \
	"a_transport=udp" "b_transport=tcp"
assert_cdr_times 0
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
