#!/bin/bash
#
# flow_11_hold — call flow 11, call hold and resume, as the call table
# shows it.
#
# One call (static route).  The callee (flow_11_callee) re-INVITEs four
# times, 1.5 s apart: hold with a=sendonly, resume with a=sendrecv, hold
# with c=0.0.0.0, resume.  Each re-INVITE is relayed to the caller
# (flow_11_caller) with its SDP unchanged, the caller's 200 and the ACK are
# relayed back.  `show calls --json` must go ANSWERED → HELD (held_by
# callee) → ANSWERED → HELD (held_by callee) → ANSWERED, and the text table
# must say HELD(by callee) while held.  The callee hangs up; one CDR.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=20
redis_start
b2b_start

uas_start uas flow_11_callee -m 1
uac_start uac flow_11_caller -m 1 -key caller alice

ANSWERED='length == 1 and .[0].state == "ANSWERED" and .[0].held_by == null'
HELD='length == 1 and .[0].state == "HELD" and .[0].held_by == "callee"'
wait_state 3 "$ANSWERED" "ANSWERED, not held"
cli_json calls '.[0]' >"$T/call.json"

# held_text WHAT: the text table shows the call held by the callee.
held_text() {
	cli show calls >"$T/calls.txt" || fail "b2bua-cli show calls failed"
	assert_grep 'HELD\(by callee\)' "$T/calls.txt" "$1: text table says HELD(by callee)"
	assert_no_grep 'ANSWERED' "$T/calls.txt" "$1: text table has no ANSWERED call"
}
wait_state 3 "$HELD" "HELD by the callee (a=sendonly)"
held_text "hold 1"
wait_state 3 "$ANSWERED" "ANSWERED again (resumed with a=sendrecv)"
cli show calls >"$T/calls.txt" || fail "b2bua-cli show calls failed"
assert_grep 'ANSWERED' "$T/calls.txt" "resume 1: text table says ANSWERED"
wait_state 3 "$HELD" "HELD by the callee (c=0.0.0.0)"
held_text "hold 2"
wait_state 3 "$ANSWERED" "ANSWERED again (resumed)"

sipp_wait uac || fail "uac exited $?"
uas_wait uas
assert_sipp_ok uac 1
assert_sipp_ok uas 1

reinvites() {  # the message sequence of one relayed re-INVITE, on one side
	local i
	for ((i = 0; i < 4; i++)); do
		if [ "$1" = caller ]; then
			printf '%s\n' "recv INVITE" "sent 200/INVITE" "recv ACK"
		else
			printf '%s\n' "sent INVITE" "recv 200/INVITE" "sent ACK"
		fi
	done
}
seq_of "$T/uac.msg" | grep -Ev '^(sent|recv) 100/INVITE$' >"$T/uac.seq"
seq_of "$T/uas.msg" | grep -Ev '^(sent|recv) 100/INVITE$' >"$T/uas.seq"
assert_eq "$(printf '%s\n' "sent INVITE" "recv 180/INVITE" "recv 200/INVITE" "sent ACK"
	reinvites caller; printf '%s\n' "recv BYE" "sent 200/BYE")" "$(cat "$T/uac.seq")" \
	"caller's messages (100s aside)"
assert_eq "$(printf '%s\n' "recv INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK"
	reinvites callee; printf '%s\n' "sent BYE" "recv 200/BYE")" "$(cat "$T/uas.seq")" \
	"callee's messages (100s aside)"
for i in 1 2 3 4; do
	sent=$(msg_body "$T/uas.msg" sent INVITE $i)
	assert_eq "$sent" "$(msg_body "$T/uac.msg" recv INVITE $i)" \
		"re-INVITE $i ($(printf '%s' "$sent" | sed -n 's/^a=x-flow11://p')) reached the caller unchanged"
	assert_eq "$(msg_body "$T/uac.msg" sent 200/INVITE $i)" \
		"$(msg_body "$T/uas.msg" recv 200/INVITE $i)" "answer $i reached the callee unchanged"
	# (marked with the CSeq of the re-INVITE the caller got: the A-leg's own)
	cseq=$(msg_header "$T/uac.msg" recv INVITE CSeq | awk '!seen[$0]++' | sed -n "${i}p")
	assert_grep "^a=x-answer:${cseq%% *}\$" <(msg_body "$T/uas.msg" recv 200/INVITE $i) \
		"answer $i is the caller's answer to offer $i"
done
assert_no_leak "$T/uac.msg" "$T/uas.msg"

wait_for 5 calls_empty || fail "show calls not empty after the call: $(cli show calls)"
wait_cdrs 1
assert_cdr_fields 0
assert_cdr_id 0 "$(jq -r .id "$T/call.json")" "$(jq -r .worker "$T/call.json")"
assert_cdr 0 "a_call_id=$(call_ids "$T/uac.msg" sent)" "b_call_id=$(call_ids "$T/uas.msg" recv)" \
	"caller=$(from_uri "$T/uac.msg")" "callee=sip:1000@$ADDR:$SIP_PORT" \
	"answered_by=sip:1000@$ADDR:$UAS_PORT;transport=udp" "forwarded_to=" \
	"disposition=ANSWERED" "sip_code=200" "hangup_by=callee" "host=$(node_id)"
assert_cdr_times 0
assert_between 6000 8000 "$(cdr_get 0 billable_ms)" "CDR billable_ms (held time included)"
assert_eq 2 "$(grep -c 'held by the callee' "$T/b2bua.log")" "the daemon logged two holds"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
