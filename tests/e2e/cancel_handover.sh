#!/bin/bash
#
# cancel_handover — a CANCEL that reaches a worker other than the one that
# owns the call (after a worker restart the kernel may hash the caller to
# another socket of the public port) still cancels the call.
#
# The callee rings for ever; the caller's CANCEL is sent, with the INVITE's
# identifiers, to the OTHER worker's own port.  That worker finds the owner
# in the call table, answers the CANCEL and hands it over (through the
# master); the owner CANCELs the callee (200, 487, ACK) and answers the
# caller's INVITE with 487, which the caller ACKs.  One CDR: CANCELLED.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=20
redis_start
b2b_start

uas_start uas uas_ring_forever -m 1
uac_start uac kill_uac_ringing -m 1
wait_state 5 'length == 1 and .[0].state == "RINGING"' "the call RINGING"
owner=$(cli_json calls '.[0].worker')
other=$((1 - owner))

# The CANCEL: the INVITE's Request-URI, Call-ID, From and To, CSeq number;
# its Via names a port nobody listens on, so its 200 disturbs no one.
ruri=$(request_uri "$T/uac.msg" sent INVITE)
cid=$(msg_header "$T/uac.msg" sent INVITE Call-ID)
from=$(msg_header "$T/uac.msg" sent INVITE From)
to=$(msg_header "$T/uac.msg" sent INVITE To)
cseq=$(msg_header "$T/uac.msg" sent INVITE CSeq | awk '{print $1}')
[ -n "$ruri" ] && [ -n "$cid" ] && [ -n "$from" ] || fail "cannot read the INVITE back"
msg="CANCEL $ruri SIP/2.0\r
Via: SIP/2.0/UDP $ADDR:9;branch=z9hG4bK-handover-$$\r
From: $from\r
To: $to\r
Call-ID: $cid\r
CSeq: $cseq CANCEL\r
Max-Forwards: 70\r
Content-Length: 0\r
\r
"
# One write, one datagram: cat writes the whole file at once.
printf "$msg" >"$T/cancel.txt"
cat "$T/cancel.txt" >"/dev/udp/$ADDR/$((WORKER_PORT_BASE + other))" ||
	fail "cannot send the CANCEL to worker $other"

sipp_wait uac || fail "uac exited $? (no 487 after the handed-over CANCEL)"
uas_wait uas
assert_sipp_ok uac 1
assert_sipp_ok uas 1
assert_seq "$T/uac.msg" "caller" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 487/INVITE" "sent ACK"
assert_eq 1 "$(msg_count "$T/uas.msg" recv CANCEL)" "the callee got CANCEL"
assert_grep "call [^ ]+-w$owner-[0-9a-f]+-[0-9]+: its CANCEL reached worker $other, not its owner $owner: handed over" \
	"$T/b2bua.log" "worker $other handed the CANCEL over"
assert_grep "worker $owner\\[[0-9]+\\] info: call [^ ]+: cancelled by a CANCEL another worker received" \
	"$T/b2bua.log" "worker $owner cancelled the call"
empty() { [ "$(cli_json calls 'length')" = 0 ]; }
wait_for 5 empty || fail "the call is still in the table: $(cli show calls)"
wait_cdrs 1
assert_cdr 0 "a_call_id=$cid" "disposition=CANCELLED" "sip_code=487" "hangup_by=caller"
log "ok: cancel_handover"
