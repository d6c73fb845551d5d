#!/bin/bash
#
# flow_04_reinvite — call flow 4, session modification, in both directions.
#
# One call (static route) whose two peers play flow_04_uac / flow_04_uas:
#   1. the callee re-INVITEs: relayed to the caller, 200 and ACK relayed back;
#   2. the caller re-INVITEs: relayed to the callee the same way;
#   3. the callee re-INVITEs and the caller refuses with 488: the 488 is
#      relayed, each leg's non-2xx is ACKed hop by hop, the call stays up;
#   4. the caller's re-INVITE is pending on the B-leg when the callee sends
#      one of its own (they cross): the callee's gets 491 and never reaches
#      the caller; the caller's completes;
#   5. the caller sends a second re-INVITE while its first is pending (the
#      callee answers late): 491 for the second, the first completes;
#   6. the caller's BYE ends the call normally.
# Every SDP offer and answer must arrive exactly as it was sent (compared
# body by body across the two message logs); the call table shows the call
# ANSWERED throughout (no hold here), and the one CDR is a normal ANSWERED
# call hung up by the caller.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=20
redis_start
b2b_start

uas_start uas flow_04_uas -m 1
uac_start uac flow_04_uac -m 1
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "the call ANSWERED"
cli_json calls '.[0]' >"$T/call.json"
sipp_wait uac || fail "uac exited $? (see uac.err)"
uas_wait uas
assert_sipp_ok uac 1
assert_sipp_ok uas 1

# 100 Trying to a re-INVITE is the daemon's business (NTA may send one for
# an INVITE that waits): leave those out of the comparison, keep the rest.
no100() { grep -Ev '^(sent|recv) 100/INVITE$'; }
seq_of "$T/uac.msg" | no100 >"$T/uac.seq"
seq_of "$T/uas.msg" | no100 >"$T/uas.seq"
assert_eq "$(printf '%s\n' \
	"sent INVITE" "recv 180/INVITE" "recv 200/INVITE" "sent ACK" \
	"recv INVITE" "sent 200/INVITE" "recv ACK" \
	"sent INVITE" "recv 200/INVITE" "sent ACK" \
	"recv INVITE" "sent 488/INVITE" "recv ACK" \
	"sent INVITE" "recv 200/INVITE" "sent ACK" \
	"sent INVITE" "sent INVITE" "recv 491/INVITE" "sent ACK" "recv 200/INVITE" "sent ACK" \
	"sent BYE" "recv 200/BYE")" "$(cat "$T/uac.seq")" "caller's messages (100s aside)"
assert_eq "$(printf '%s\n' \
	"recv INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK" \
	"sent INVITE" "recv 200/INVITE" "sent ACK" \
	"recv INVITE" "sent 200/INVITE" "recv ACK" \
	"sent INVITE" "recv 488/INVITE" "sent ACK" \
	"recv INVITE" "sent INVITE" "recv 491/INVITE" "sent ACK" "sent 200/INVITE" "recv ACK" \
	"recv INVITE" "sent 200/INVITE" "recv ACK" \
	"recv BYE" "sent 200/BYE")" "$(cat "$T/uas.seq")" "callee's messages (100s aside)"
assert_eq 1 "$(msg_header "$T/uac.msg" recv 100 CSeq | grep -c '^1 INVITE$')" \
	"the caller got 100 Trying for its INVITE"

# Each offer and answer crossed unchanged (N-th distinct message of a kind).
body_eq() {  # WHAT FROM-LOG FROM-KEY FROM-N TO-LOG TO-KEY TO-N MARKER
	local sent got
	sent=$(msg_body "$T/$2.msg" sent "$3" "$4")
	got=$(msg_body "$T/$5.msg" recv "$6" "$7")
	printf '%s' "$sent" | grep -q "a=x-flow04:$8" || fail "$1: marker $8 not in what was sent"
	assert_eq "$sent" "$got" "$1 ($8) arrived unchanged"
}
body_eq "step 1 offer" uas INVITE 1 uac INVITE 1 b1
body_eq "step 1 answer" uac 200/INVITE 1 uas 200/INVITE 1 a1
body_eq "step 2 offer" uac INVITE 2 uas INVITE 2 a2
body_eq "step 2 answer" uas 200/INVITE 2 uac 200/INVITE 2 b2
body_eq "step 3 offer" uas INVITE 2 uac INVITE 2 b3
body_eq "step 4 offer" uac INVITE 3 uas INVITE 3 a4
body_eq "step 4 answer" uas 200/INVITE 3 uac 200/INVITE 3 b4
body_eq "step 5 offer" uac INVITE 4 uas INVITE 4 a6
body_eq "step 5 answer" uas 200/INVITE 4 uac 200/INVITE 4 b6
# The crossing offers never got through.
assert_no_grep 'a=x-flow04:b5' "$T/uac.msg" "the callee's crossing re-INVITE (b5) not relayed"
assert_no_grep 'a=x-flow04:a7' "$T/uas.msg" "the caller's second re-INVITE (a7) not relayed"

# Relayed re-INVITEs are requests of the other leg's dialog: the caller's
# carry its own Call-ID and tags, the callee's the B-leg's.
A_CID=$(call_ids "$T/uac.msg" sent)
B_CID=$(call_ids "$T/uas.msg" sent)
assert_eq "$A_CID" "$(call_ids "$T/uac.msg" recv)" "caller: one dialog"
assert_eq "$B_CID" "$(call_ids "$T/uas.msg" recv)" "callee: one dialog"
assert_no_leak "$T/uac.msg" "$T/uas.msg"
# The relayed 200s advertise us, not the far end, as Contact.
assert_no_grep "$ADDR:$UAS_PORT" <(msg_header "$T/uac.msg" recv INVITE Contact) \
	"re-INVITEs to the caller carry our Contact"

# --- the call table and the CDR
wait_for 5 calls_empty || fail "show calls not empty after the call: $(cli show calls)"
wait_cdrs 1
assert_cdr_fields 0
assert_cdr_id 0 "$(jq -r .id "$T/call.json")" "$(jq -r .worker "$T/call.json")"
assert_cdr 0 "a_call_id=$A_CID" "b_call_id=$B_CID" \
	"caller=$(from_uri "$T/uac.msg")" "callee=sip:1000@$ADDR:$SIP_PORT" \
	"answered_by=sip:1000@$ADDR:$UAS_PORT;transport=udp" "forwarded_to=" \
	"disposition=ANSWERED" "sip_code=200" "hangup_by=caller" "host=$(node_id)"
assert_cdr_times 0
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
