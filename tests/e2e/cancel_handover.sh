#!/bin/bash
#
# cancel_handover — a CANCEL that reaches a worker other than the one that
# owns the call (after a worker restart the kernel may hash the caller to
# another socket of the public port) still cancels the call.
#
# The callee rings for ever; the caller's CANCEL is sent, with the INVITE's
# identifiers, to the OTHER worker's own port.  That worker finds the owner
# in the call table and hands the datagram over (worker/dgram.c, through
# the shared-memory queue of shm/handover.h); the owner answers the CANCEL,
# CANCELs the callee (200, 487, ACK) and answers the caller's INVITE with
# 487, which the caller ACKs.  One CDR: CANCELLED.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=20
redis_start
b2b_start

uas_start uas uas_ring_forever -m 1
uac_start uac uac_cancel_elsewhere -m 1
wait_state 5 'length == 1 and .[0].state == "RINGING"' "the call RINGING"
owner=$(cli_json calls '.[0].worker')
other=$((1 - owner))

# The CANCEL: the INVITE's Request-URI, top Via (RFC 3261 9.1: the CANCEL
# matches its INVITE by the branch and sent-by), Call-ID, From and To, CSeq
# number.  Its 200 goes where the CANCEL came from (rport: the test's
# socket); the caller's scenario would accept it too.
ruri=$(request_uri "$T/uac.msg" sent INVITE)
cid=$(msg_header "$T/uac.msg" sent INVITE Call-ID)
from=$(msg_header "$T/uac.msg" sent INVITE From)
to=$(msg_header "$T/uac.msg" sent INVITE To)
cseq=$(msg_header "$T/uac.msg" sent INVITE CSeq | awk '{print $1}')
via=$(msg_header "$T/uac.msg" sent INVITE Via)
[ -n "$ruri" ] && [ -n "$cid" ] && [ -n "$from" ] && [ -n "$via" ] ||
	fail "cannot read the INVITE back"
msg="CANCEL $ruri SIP/2.0\r
Via: $via\r
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
# (Also counted: what the kernel's hash brought to worker $other on the
# public port, the INVITE or the ACK of the 487, handed over the same way.)
assert_ge 1 "$(cli_json workers ".[] | select(.index == $other) | .handed_out")" \
	"worker $other handed the CANCEL over"
assert_ge 1 "$(cli_json workers ".[] | select(.index == $owner) | .handed_in")" \
	"worker $owner received it"
wait_for 5 calls_empty || fail "the call is still in the table: $(cli show calls)"
wait_cdrs 1
assert_cdr 0 "a_call_id=$cid" "disposition=CANCELLED" "sip_code=487" "hangup_by=caller"
log "ok: cancel_handover"
