#!/bin/bash
#
# tcp_flows — call flows 4 (re-INVITE), 5 (release and billing), 7 (CANCEL
# on no answer) and 11 (hold) with BOTH legs on TCP (issue 11).
#
# transports = ["udp", "tcp"]; the route target says ;transport=tcp.  The
# caller is a sipp UAC in multi-socket TCP mode (-t tn) towards the public
# port; the callee a sipp UAS listening on TCP (-t tn too: the flow
# scenarios send their in-dialog requests to the INVITE's Contact, a
# setdest that single-socket mode refuses).  The scenarios are the UDP
# flow tests' own.  Each flow asserts:
#   - each peer's messages, in order (see "what sipp logs" below), and
#     that every offer and answer crossed unchanged;
#   - every request we sent each peer, and every one it sent us, went over
#     TCP (Via SIP/2.0/TCP), and our Contact on both legs is the call's
#     worker's own port with ;transport=tcp;
#   - the call table while the call is up: A_TRANSPORT tcp, B_TRANSPORT
#     tcp (show calls text and JSON, show call ID), the state (HELD while
#     held in flow 11);
#   - the CDR: a_transport tcp, b_transport tcp, the disposition, who hung
#     up and a billed duration that matches the talk time.
#
# What sipp logs: in -t tn mode `-trace_msg` leaves out a message written
# while its connection is still connecting (docs/architecture.md,
# "Connections", fact 8): the caller's INVITE, and the first message each
# peer sends after its setdest opens a connection to our Contact (the
# caller's ACK, the callee's first in-dialog request).  sipp logs "Wrote N
# of N bytes in an output buffer" for each instead; the expected sequences
# below leave those messages out, and count the notes.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

command -v ss >/dev/null || skip "ss not found (Debian package iproute2)"

SIPP_TIMEOUT=25
redis_start
CFG_EXTRA='transports = [ "udp", "tcp" ];'
CFG_ROUTES="{ prefix = \"1\"; target = \"sip:$ADDR:$UAS_PORT;transport=tcp\"; }"
b2b_start

# uas_tcp NAME SCENARIO [SIPP ARGS...]: a sipp UAS listening on TCP
# $ADDR:$UAS_PORT (uas_start waits for a UDP socket).  sipp refuses a
# setdest on a connection it accepted ("Can not change destinations for a
# TCP/SCTP socket that has more than one user"), so the callee's scenario
# runs without its setdest: its in-dialog requests go over the connection
# our INVITE came on, as a user agent reusing its connection does (RFC
# 5923); they reach the call's worker, which owns that connection.
uas_tcp() {
	local name=$1 scen=$2
	shift 2
	_sipp_common "$name"
	# (the Contact it read stays used, in a log line: sipp refuses unused variables)
	sed 's|<setdest host="\[\$rhost\]" port="\[\$rport\]" protocol="\[transport\]"/>|<log message="Contact [$rhost]:[$rport]: connection kept"/>|' \
		"$SIPP_DIR/$scen.xml" >"$T/$scen.tcp.xml"
	! grep -q '<setdest' "$T/$scen.tcp.xml" || fail "$scen.xml: a setdest left"
	(cd "$T" && exec timeout $((SIPP_TIMEOUT + 30)) sipp -sf "$T/$scen.tcp.xml" \
		-i "$ADDR" -p "$UAS_PORT" -t tn -max_socket 100 "${_SIPP_ARGS[@]}" "$@") \
		>"$T/$name.out" 2>&1 &
	SIPP_PID[$name]=$!
	_track "$!"
	_listening() { ss -Htln "sport = :$UAS_PORT" | grep -q "$ADDR:$UAS_PORT"; }
	wait_for 5 _listening || fail "sipp $name does not listen on TCP $ADDR:$UAS_PORT"
}

# uac_tcp NAME SCENARIO [SIPP ARGS...]: a sipp UAC over TCP to the public port.
uac_tcp() { uac_start "$@" -t tn -max_socket 100; }

# seq_tcp LOG: the peer's message sequence, without the 100 Trying to
# re-INVITEs (the daemon's business) and sipp's notes.
seq_tcp() { seq_of "$1" | grep -Ev '^(sent|recv) 100/INVITE$'; }

# writes_buffered LOG N: sipp noted N messages written to a connection
# still connecting (left out of its log).
writes_buffered() {
	assert_eq "$2" "$(grep -c 'bytes in an output buffer' "$1")" \
		"$(basename "$1" .msg): messages written while connecting"
}

# over_tcp LOG WHAT: every request the peer got from us and every one it
# sent came over TCP (each Via naming a transport names TCP).
over_tcp() {
	local vias
	vias=$(grep -E '^Via:' "$1" | grep -Eo 'SIP/2.0/[A-Z]+' | sort -u | paste -sd' ')
	assert_eq "SIP/2.0/TCP" "$vias" "$2: every Via is TCP"
}

# own_contact LOG DIR KEY WHAT: our Contact in the peer's message names the
# call's worker's own port, ;transport=tcp.
own_contact() {
	assert_grep "$ADDR:$OWN;transport=tcp" <(msg_header "$1" "$2" "$3" Contact) "$4"
}

# up CALL-JSON: the call is up with both legs on TCP in the call table;
# sets OWN (the own port of the call's worker).
up() {
	cli_json calls '.[0]' >"$1"
	assert_call_transports "$(jq -r .id "$1")" tcp tcp
	OWN=$((WORKER_PORT_BASE + $(jq -r .worker "$1")))
}

# cdr_tcp I: CDR I is of a call on TCP on both legs.
cdr_tcp() {
	assert_cdr_fields "$1"
	assert_cdr "$1" "a_transport=tcp" "b_transport=tcp" "host=$(node_id)"
	assert_cdr_times "$1"
}

# ------------------------------------------------------------ flow 4: re-INVITE
# Both directions, a refused one (488), crossing ones (491) and a second
# one while the first is pending (491): flow_04_reinvite.sh's scenarios.
uas_tcp uas4 flow_04_uas -m 1
uac_tcp uac4 flow_04_uac -m 1
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "flow 4: the call ANSWERED"
up "$T/call4.json"
sipp_wait uac4 || fail "uac4 exited $? (see uac4.err)"
uas_wait uas4
assert_sipp_ok uac4 1
assert_sipp_ok uas4 1
# The caller's INVITE and its first ACK (to our Contact, a new connection)
# are not in its log.
assert_eq "$(printf '%s\n' \
	"recv 180/INVITE" "recv 200/INVITE" \
	"recv INVITE" "sent 200/INVITE" "recv ACK" \
	"sent INVITE" "recv 200/INVITE" "sent ACK" \
	"recv INVITE" "sent 488/INVITE" "recv ACK" \
	"sent INVITE" "recv 200/INVITE" "sent ACK" \
	"sent INVITE" "sent INVITE" "recv 491/INVITE" "sent ACK" "recv 200/INVITE" "sent ACK" \
	"sent BYE" "recv 200/BYE")" "$(seq_tcp "$T/uac4.msg")" "flow 4: caller's messages"
writes_buffered "$T/uac4.msg" 2
assert_eq "$(printf '%s\n' \
	"recv INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK" \
	"sent INVITE" "recv 200/INVITE" "sent ACK" \
	"recv INVITE" "sent 200/INVITE" "recv ACK" \
	"sent INVITE" "recv 488/INVITE" "sent ACK" \
	"recv INVITE" "sent INVITE" "recv 491/INVITE" "sent ACK" "sent 200/INVITE" "recv ACK" \
	"recv INVITE" "sent 200/INVITE" "recv ACK" \
	"recv BYE" "sent 200/BYE")" "$(seq_tcp "$T/uas4.msg")" "flow 4: callee's messages"
writes_buffered "$T/uas4.msg" 0
# Every offer and answer crossed unchanged (flow_04_reinvite.sh's markers).
body4() {  # WHAT FROM-LOG FROM-KEY FROM-N TO-LOG TO-KEY TO-N MARKER
	local sent
	sent=$(msg_body "$T/$2.msg" sent "$3" "$4" | grep -Ev '^(Problem|Added|Exit problem|Wrote) ')
	printf '%s' "$sent" | grep -q "a=x-flow04:$8" || fail "$1: marker $8 not in what was sent"
	assert_eq "$sent" "$(msg_body "$T/$5.msg" recv "$6" "$7" |
		grep -Ev '^(Problem|Added|Exit problem|Wrote) ')" "flow 4: $1 ($8) arrived unchanged"
}
body4 "step 1 offer" uas4 INVITE 1 uac4 INVITE 1 b1
body4 "step 1 answer" uac4 200/INVITE 1 uas4 200/INVITE 1 a1
body4 "step 2 offer" uac4 INVITE 1 uas4 INVITE 2 a2
body4 "step 2 answer" uas4 200/INVITE 2 uac4 200/INVITE 2 b2
body4 "step 3 offer" uas4 INVITE 2 uac4 INVITE 2 b3
body4 "step 4 offer" uac4 INVITE 2 uas4 INVITE 3 a4
body4 "step 4 answer" uas4 200/INVITE 3 uac4 200/INVITE 3 b4
body4 "step 5 offer" uac4 INVITE 3 uas4 INVITE 4 a6
body4 "step 5 answer" uas4 200/INVITE 4 uac4 200/INVITE 4 b6
assert_no_grep 'a=x-flow04:b5' "$T/uac4.msg" "flow 4: the callee's crossing re-INVITE not relayed"
assert_no_grep 'a=x-flow04:a7' "$T/uas4.msg" "flow 4: the caller's second re-INVITE not relayed"
assert_no_leak "$T/uac4.msg" "$T/uas4.msg"
over_tcp "$T/uac4.msg" "flow 4 caller"
over_tcp "$T/uas4.msg" "flow 4 callee"
own_contact "$T/uac4.msg" recv 200 "flow 4: the caller's 200: our Contact"
own_contact "$T/uac4.msg" recv INVITE "flow 4: the re-INVITEs to the caller: our Contact"
own_contact "$T/uas4.msg" recv INVITE "flow 4: the INVITEs to the callee: our Contact"
wait_for 5 calls_empty || fail "flow 4: show calls not empty: $(cli show calls)"
wait_cdrs 1
cdr_tcp 0
assert_cdr 0 "id=$(jq -r .id "$T/call4.json")" "a_call_id=$(call_ids "$T/uac4.msg" recv)" \
	"b_call_id=$(call_ids "$T/uas4.msg" recv)" "disposition=ANSWERED" "sip_code=200" \
	"hangup_by=caller" "answered_by=sip:1000@$ADDR:$UAS_PORT;transport=tcp"
rcli DEL "$CDR_STREAM" >/dev/null

# ------------------------------------------------------------ flow 5: release, billing
# 5.1 the callee hangs up after 3 s; 5.2 the caller after 4 s (time enough
# to look at the call table three ways).
uas_tcp uas5 uas_send_bye -m 1 -d 3000
uac_tcp uac5 uac_recv_bye -m 1
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "flow 5.1: the call ANSWERED"
up "$T/call5.json"
sipp_wait uac5 || fail "uac5 exited $? (see uac5.err)"
uas_wait uas5
assert_sipp_ok uac5 1
assert_sipp_ok uas5 1
assert_eq "$(printf '%s\n' "recv 100/INVITE" "recv 180/INVITE" "recv 200/INVITE" \
	"recv BYE" "sent 200/BYE")" "$(seq_of "$T/uac5.msg")" "flow 5.1: caller's messages"
writes_buffered "$T/uac5.msg" 2
assert_eq "$(printf '%s\n' "recv INVITE" "sent 100/INVITE" "sent 180/INVITE" \
	"sent 200/INVITE" "recv ACK" "sent BYE" "recv 200/BYE")" "$(seq_of "$T/uas5.msg")" \
	"flow 5.1: callee's messages"
# The BYE relayed to the caller is in the caller's dialog, over its connection.
assert_eq "$(call_ids "$T/uac5.msg" recv | head -n1)" \
	"$(msg_list "$T/uac5.msg" | awk '$1 == "recv" && $2 == "BYE" { print $4 }')" \
	"flow 5.1: the BYE is in the caller's dialog"
over_tcp "$T/uac5.msg" "flow 5.1 caller"
over_tcp "$T/uas5.msg" "flow 5.1 callee"
assert_no_leak "$T/uac5.msg" "$T/uas5.msg"
wait_for 5 calls_empty || fail "flow 5.1: show calls not empty: $(cli show calls)"
wait_cdrs 1
cdr_tcp 0
assert_cdr 0 "id=$(jq -r .id "$T/call5.json")" "disposition=ANSWERED" "sip_code=200" \
	"hangup_by=callee" "b_call_id=$(call_ids "$T/uas5.msg" recv)"
assert_between 2900 3700 "$(cdr_get 0 billable_ms)" "flow 5.1: CDR billable_ms (~3000 ms of talk)"

uas_tcp uas5b uas_basic -m 1
uac_tcp uac5b uac_basic -m 1 -d 4000
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "flow 5.2: the call ANSWERED"
up "$T/call5b.json"
sipp_wait uac5b || fail "uac5b exited $? (see uac5b.err)"
uas_wait uas5b
assert_sipp_ok uac5b 1
assert_sipp_ok uas5b 1
assert_eq "$(printf '%s\n' "recv 100/INVITE" "recv 180/INVITE" "recv 200/INVITE" \
	"sent BYE" "recv 200/BYE")" "$(seq_of "$T/uac5b.msg")" "flow 5.2: caller's messages"
assert_eq "$(printf '%s\n' "recv INVITE" "sent 100/INVITE" "sent 180/INVITE" \
	"sent 200/INVITE" "recv ACK" "recv BYE" "sent 200/BYE")" "$(seq_of "$T/uas5b.msg")" \
	"flow 5.2: callee's messages"
over_tcp "$T/uac5b.msg" "flow 5.2 caller"
over_tcp "$T/uas5b.msg" "flow 5.2 callee"
wait_for 5 calls_empty || fail "flow 5.2: show calls not empty: $(cli show calls)"
wait_cdrs 2
cdr_tcp 1
assert_cdr 1 "id=$(jq -r .id "$T/call5b.json")" "disposition=ANSWERED" "sip_code=200" \
	"hangup_by=caller" "b_call_id=$(call_ids "$T/uas5b.msg" recv)"
assert_between 3900 4700 "$(cdr_get 1 billable_ms)" "flow 5.2: CDR billable_ms (~4000 ms of talk)"
rcli DEL "$CDR_STREAM" >/dev/null

# ------------------------------------------------------------ flow 7: CANCEL
# The callee rings; the caller's CANCEL reaches it in its INVITE's
# transaction, over the connection the INVITE came on.
# uac_cancel.xml with 2 s of ringing instead of 300 ms, time enough to see
# the call RINGING in the table.
sed 's|<pause milliseconds="300"/>|<pause milliseconds="2000"/>|' "$SIPP_DIR/uac_cancel.xml" \
	>"$T/uac_cancel_2s.xml"
grep -q 'milliseconds="2000"' "$T/uac_cancel_2s.xml" || fail "uac_cancel.xml: no 300 ms pause"
uas_tcp uas7 uas_ring_forever -m 1
SIPP_DIR=$T uac_tcp uac7 uac_cancel_2s -m 1
wait_state 5 'length == 1 and .[0].state == "RINGING" and .[0].a_transport == "tcp" and
	.[0].b_transport == "tcp"' "flow 7: the call RINGING, both legs tcp"
sipp_wait uac7 || fail "uac7 exited $? (see uac7.err)"
uas_wait uas7
assert_sipp_ok uac7 1
assert_sipp_ok uas7 1
assert_eq "$(printf '%s\n' "recv 100/INVITE" "recv 180/INVITE" "sent CANCEL" \
	"recv 200/CANCEL" "recv 487/INVITE" "sent ACK")" "$(seq_of "$T/uac7.msg")" \
	"flow 7: caller's messages"
writes_buffered "$T/uac7.msg" 1
assert_eq "$(printf '%s\n' "recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "recv CANCEL" \
	"sent 200/CANCEL" "sent 487/INVITE" "recv ACK")" "$(seq_of "$T/uas7.msg")" \
	"flow 7: callee's messages"
assert_eq "$(msg_header "$T/uas7.msg" recv INVITE Via | grep -o 'branch=[^;]*')" \
	"$(msg_header "$T/uas7.msg" recv CANCEL Via | grep -o 'branch=[^;]*')" \
	"flow 7: the callee's CANCEL is in its INVITE's transaction"
over_tcp "$T/uac7.msg" "flow 7 caller"
over_tcp "$T/uas7.msg" "flow 7 callee"
assert_no_leak "$T/uac7.msg" "$T/uas7.msg"
wait_for 5 calls_empty || fail "flow 7: show calls not empty: $(cli show calls)"
wait_cdrs 1
cdr_tcp 0
assert_cdr 0 "b_call_id=$(call_ids "$T/uas7.msg" recv)" \
	"answered_by=" "disposition=CANCELLED" "sip_code=487" "hangup_by=caller" \
	"answer_ms=0" "billable_ms=0"
[ "$(cdr_get 0 ring_ms)" != 0 ] || fail "flow 7: CDR ring_ms is 0 though the callee rang"
rcli DEL "$CDR_STREAM" >/dev/null

# ------------------------------------------------------------ flow 11: hold
# The callee holds (a=sendonly), resumes, holds (c=0.0.0.0), resumes, and
# hangs up; the call table follows.
uas_tcp uas11 flow_11_callee -m 1
uac_tcp uac11 flow_11_caller -m 1 -key caller alice
# (the states last 1.5 s each: one look at the table per state, the
# transports in the same look)
TCP='.[0].a_transport == "tcp" and .[0].b_transport == "tcp"'
ANSWERED="length == 1 and .[0].state == \"ANSWERED\" and .[0].held_by == null and $TCP"
HELD="length == 1 and .[0].state == \"HELD\" and .[0].held_by == \"callee\" and $TCP"
wait_state 3 "$ANSWERED" "flow 11: ANSWERED, not held, both legs tcp"
wait_state 3 "$HELD" "flow 11: HELD by the callee (a=sendonly), both legs tcp"
cli show calls >"$T/calls11.txt" || fail "b2bua-cli show calls failed"
assert_grep 'HELD\(by callee\) .* tcp +tcp$' "$T/calls11.txt" \
	"flow 11: text table: HELD(by callee), both legs tcp"
wait_state 3 "$ANSWERED" "flow 11: ANSWERED again (resumed)"
wait_state 3 "$HELD" "flow 11: HELD by the callee (c=0.0.0.0)"
wait_state 3 "$ANSWERED" "flow 11: ANSWERED again (resumed)"
sipp_wait uac11 || fail "uac11 exited $? (see uac11.err)"
uas_wait uas11
assert_sipp_ok uac11 1
assert_sipp_ok uas11 1
reinvites() {  # the four relayed re-INVITEs, on one side
	local i
	for ((i = 0; i < 4; i++)); do
		if [ "$1" = caller ]; then
			printf '%s\n' "recv INVITE" "sent 200/INVITE" "recv ACK"
		else
			printf '%s\n' "sent INVITE" "recv 200/INVITE" "sent ACK"
		fi
	done
}
assert_eq "$(printf '%s\n' "recv 180/INVITE" "recv 200/INVITE"
	reinvites caller; printf '%s\n' "recv BYE" "sent 200/BYE")" "$(seq_tcp "$T/uac11.msg")" \
	"flow 11: caller's messages"
writes_buffered "$T/uac11.msg" 2
assert_eq "$(printf '%s\n' "recv INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK"
	reinvites callee; printf '%s\n' "sent BYE" "recv 200/BYE")" "$(seq_tcp "$T/uas11.msg")" \
	"flow 11: callee's messages"
for i in 1 2 3 4; do
	sent=$(msg_body "$T/uas11.msg" sent INVITE $i)
	assert_eq "$sent" "$(msg_body "$T/uac11.msg" recv INVITE $i)" \
		"flow 11: re-INVITE $i ($(printf '%s' "$sent" | sed -n 's/^a=x-flow11://p')) reached the caller unchanged"
	assert_eq "$(msg_body "$T/uac11.msg" sent 200/INVITE $i)" \
		"$(msg_body "$T/uas11.msg" recv 200/INVITE $i)" "flow 11: answer $i reached the callee unchanged"
done
over_tcp "$T/uac11.msg" "flow 11 caller"
over_tcp "$T/uas11.msg" "flow 11 callee"
assert_no_leak "$T/uac11.msg" "$T/uas11.msg"
wait_for 5 calls_empty || fail "flow 11: show calls not empty: $(cli show calls)"
wait_cdrs 1
cdr_tcp 0
assert_cdr 0 "disposition=ANSWERED" "sip_code=200" "hangup_by=callee"
assert_between 6000 8000 "$(cdr_get 0 billable_ms)" "flow 11: CDR billable_ms (held time included)"
assert_eq 2 "$(grep -c 'held by the callee' "$T/b2bua.log")" "flow 11: the daemon logged two holds"

assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
