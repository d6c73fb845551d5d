#!/bin/bash
#
# tcp_basic — call flow 3 with the caller on TCP and the callee on UDP
# (issue 11, first slice: transports = ["udp", "tcp"]).
#
# The sipp caller (-t tn: sipp's multi-socket TCP mode, which uac_basic's setdest needs) sends its INVITE to the
# public port over TCP; the call goes to the sipp callee over UDP, 2 s of
# talk, the caller hangs up.  Asserted:
#   - each party saw exactly its leg's messages, in order, and the SDP
#     crossed unchanged both ways;
#   - the caller's 200 carries our Contact with ;transport=tcp on the
#     worker's own port (so its ACK and BYE, sent there by uac_basic's
#     setdest on a new connection, reached the call's worker), the callee's
#     INVITE our UDP Contact and Via;
#   - while the call is up `show calls` lists it ANSWERED, its A-leg on
#     tcp and its B-leg on udp; afterwards the table is empty and the
#     stream holds exactly one CDR with every field right (a_transport tcp,
#     b_transport udp);
#   - both workers listen on the public TCP port (SO_REUSEPORT);
#   - with the default transports the public port takes no TCP connection.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

command -v ss >/dev/null || skip "ss not found (Debian package iproute2)"

redis_start
CFG_EXTRA='transports = [ "udp", "tcp" ];'
b2b_start

# --- every worker listens on the public TCP port, each on its own port too
listeners=$(ss -Htln "sport = :$SIP_PORT" | grep -c "$ADDR:$SIP_PORT")
assert_eq "$CFG_WORKERS" "$listeners" "TCP listeners on the public port"
for i in $(seq 0 $((CFG_WORKERS - 1))); do
	port=$((WORKER_PORT_BASE + i))
	[ "$(ss -Htln "sport = :$port" | grep -c "$ADDR:$port")" = 1 ] ||
		fail "worker $i does not listen on TCP $ADDR:$port"
done
log "ok: $listeners TCP listeners on the public port, one on each own port"

uas_start uas uas_basic -m 1
uac_start uac uac_basic -m 1 -d 2000 -t tn -max_socket 100

# --- during the call
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "the call ANSWERED"
cli_json calls '.[0]' >"$T/call.json"
assert_eq "sip:1000@$ADDR:$SIP_PORT" "$(jq -r .callee "$T/call.json")" "show calls: callee"
# In multi-socket mode sipp's [local_port] is its connection's port.
assert_grep "^sip:sipp@$ADDR:[0-9]*$" <(jq -r .caller "$T/call.json") "show calls: caller"
WORKER=$(jq -r .worker "$T/call.json")
assert_leg_transports "$T/call.json" tcp udp

sipp_wait uac || fail "uac exited $?"
uas_wait uas
assert_sipp_ok uac 1
assert_sipp_ok uas 1

# --- what each party saw
# sipp's -trace_msg leaves out a message written to a connection that is
# still connecting (it logs only "Wrote N of N bytes in an output buffer"):
# its INVITE (first connection) and ACK (the connection setdest opens to our
# Contact) are not in its log.  Its success count says it sent them; that
# our 200 was sent once and never retransmitted says its ACK reached us.
assert_seq "$T/uac.msg" "caller (A-leg, TCP)" \
	"recv 100/INVITE" "recv 180/INVITE" "recv 200/INVITE" "sent BYE" "recv 200/BYE"
assert_grep "Wrote .* bytes in an output buffer" "$T/uac.msg" "sipp buffered its first writes"
assert_eq 3 "$(grep -c '^CSeq: 1 INVITE' "$T/uac.msg")" \
	"the caller got 100, 180 and 200 once each (its ACK stopped our 2xx retransmissions)"
assert_seq "$T/uas.msg" "callee (B-leg, UDP)" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK" \
	"recv BYE" "sent 200/BYE"
assert_grep "SIP/2.0/TCP" <(msg_header "$T/uac.msg" recv 100 Via) "the caller's INVITE came over TCP"
assert_grep "SIP/2.0/TCP" <(msg_header "$T/uac.msg" sent BYE Via) "the caller's BYE went over TCP"
assert_grep "^o=uac 53655765 " <(msg_body "$T/uas.msg" recv INVITE) \
	"the caller's offer reached the callee"
# (without sipp's notes about its buffered writes, logged after the body)
assert_eq "$(msg_body "$T/uas.msg" sent 200/INVITE)" \
	"$(msg_body "$T/uac.msg" recv 200/INVITE | grep -Ev '^(Problem|Added|Exit problem|Wrote) ')" \
	"the answer reached the caller unchanged"
assert_no_leak "$T/uac.msg" "$T/uas.msg"
OWN=$((WORKER_PORT_BASE + WORKER))
assert_grep "$ADDR:$OWN;transport=tcp" <(msg_header "$T/uac.msg" recv 200 Contact) \
	"the caller's 200: our Contact, own port of worker $WORKER, transport=tcp"
assert_grep "SIP/2.0/UDP $ADDR:$OWN" <(msg_header "$T/uas.msg" recv INVITE Via) \
	"the callee's INVITE: our Via over UDP from the own port"
assert_grep "$ADDR:$OWN;transport=udp" <(msg_header "$T/uas.msg" recv INVITE Contact) \
	"the callee's INVITE: our UDP Contact"

A_CID=$(call_ids "$T/uac.msg" sent)
B_CID=$(call_ids "$T/uas.msg" recv)
assert_eq "$A_CID" "$(jq -r .a_call_id "$T/call.json")" "show calls: a_call_id"
assert_eq "$B_CID" "$(jq -r .b_call_id "$T/call.json")" "show calls: b_call_id"

# --- after the call
wait_for 5 calls_empty || fail "show calls not empty after the call: $(cli show calls)"
log "ok: show calls empty after the call"

wait_cdrs 1
assert_cdr_fields 0
assert_cdr_id 0 "$(jq -r .id "$T/call.json")" "$WORKER"
assert_cdr 0 \
	"a_call_id=$A_CID" "b_call_id=$B_CID" \
	"caller=$(jq -r .caller "$T/call.json")" "callee=sip:1000@$ADDR:$SIP_PORT" \
	"answered_by=sip:1000@$ADDR:$UAS_PORT;transport=udp" "forwarded_to=" \
	"disposition=ANSWERED" "sip_code=200" "hangup_by=caller" \
	"host=$(node_id)" "worker=$WORKER" "a_transport=tcp" "b_transport=udp"
assert_cdr_times 0
assert_between 1800 3500 "$(cdr_get 0 billable_ms)" "CDR billable_ms (2 s of talk)"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"

# --- the default (UDP only) listens on no TCP port
b2b_stop || fail "b2bua exit status $? on SIGTERM"
CFG_EXTRA=""
write_config
b2b_start
assert_eq 0 "$(ss -Htln "sport = :$SIP_PORT" | grep -c "$ADDR:$SIP_PORT")" \
	"TCP listeners on the public port with the default transports"
log "PASS"
