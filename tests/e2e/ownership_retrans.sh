#!/bin/bash
#
# ownership_retrans — copies of one INVITE that land on different workers
# make one call, not two.
#
# A caller whose INVITE is retransmitted from other source ports (a trunk
# with several sockets, a NAT rebinding, a worker restart that re-hashed the
# flows) reaches different workers through SO_REUSEPORT.  For each of K
# Call-IDs the same INVITE (same Call-ID, From tag, CSeq and Via branch) is
# sent from COPIES fresh source ports at once (tests/sipp/own_udp_send.py:
# it only sends; the callee is a real sipp), and once more from COPIES other
# ports after the call ended (late retransmissions, while the owner's
# INVITE transaction still absorbs them).  The callee is busy (486), so each
# call ends by itself.  Asserted: the callee got exactly one INVITE a call, the
# stream holds exactly one CDR per Call-ID (BUSY), the table empties; and
# the workers' counters show that the copies did reach both workers and were
# handed over (handed_out, handed_in, msgs_in: what the kernel gave a worker
# is msgs_in - handed_in + handed_out).

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

command -v python3 >/dev/null 2>&1 || skip "python3 not found"

K=6
SINK_PORT=5090
COPIES=6
SIPP_TIMEOUT=40

# invite_file C: the A-leg INVITE of call C in $T/invite$C.txt (CRLF).
invite_file() {
	local c=$1 body
	body="v=0\r
o=retrans 1 1 IN IP4 $ADDR\r
s=-\r
c=IN IP4 $ADDR\r
t=0 0\r
m=audio 6000 RTP/AVP 0\r
a=rtpmap:0 PCMU/8000\r
"
	# The Via names the sink: a sipp that discards the answers (a port
	# nobody listens on would make ICMP errors fail the transactions).
	printf "INVITE sip:1000@$ADDR:$SIP_PORT SIP/2.0\r
Via: SIP/2.0/UDP $ADDR:$SINK_PORT;branch=z9hG4bK-own-retrans-$c-$$\r
From: <sip:retrans@$ADDR>;tag=own-retrans-$c-$$\r
To: <sip:1000@$ADDR:$SIP_PORT>\r
Call-ID: $(call_id "$c")\r
CSeq: 1 INVITE\r
Contact: <sip:retrans@$ADDR:$SINK_PORT>\r
Max-Forwards: 70\r
Content-Type: application/sdp\r
Content-Length: %d\r
\r
$body" "$(printf "$body" | wc -c)" >"$T/invite$c.txt"
}
call_id() { echo "own-retrans-$1-$$@$ADDR"; }

redis_start
b2b_start
wait_for 5 redis_up || fail "not every worker connected to Redis"
uas_start uas uas_busy   # no -m: stopped below, so it sees any extra INVITE
uas_start sink uas_busy -p $SINK_PORT   # gets only answers: discards them

# cdr_of C: the stream holds a CDR of call C (by its A-leg Call-ID).
cdr_of() {
	cdr_load
	[ "$(jq --arg id "$(call_id "$1")" '[.[] | select(.a_call_id == $id)] | length' "$CDR_JSON")" -ge 1 ]
}

# Call K+1 gets no late copies: its CDR says that every earlier datagram
# was processed (so the callee's count below is complete).
for ((c = 1; c <= K + 1; c++)); do
	invite_file $c
	ports=$(udp_spray $COPIES "$T/invite$c.txt") || fail "cannot send INVITE $c"
	log "INVITE $c ($(call_id $c)) sent from ports $ports"
	wait_for 5 cdr_of $c || fail "call $c: no CDR within 5 s ($(cdr_len) CDRs)"
	[ $c -le $K ] || break
	ports=$(udp_spray $COPIES "$T/invite$c.txt") || fail "cannot send INVITE $c again"
	log "INVITE $c sent again, after its call ended, from ports $ports"
done
K=$((K + 1))

wait_for 5 calls_empty || fail "calls left in the table: $(cli show calls)"
sipp_stop uas
assert_count "$T/uas.msg" recv INVITE $K
assert_eq $K "$(call_ids "$T/uas.msg" recv | wc -l)" "B-leg Call-IDs the callee saw"
wait_cdrs $K
for ((c = 1; c <= K; c++)); do
	i=$(cdr_index ".a_call_id == \"$(call_id $c)\"")
	assert_cdr "$i" disposition=BUSY sip_code=486
done

# The copies reached both workers, and the non-owner handed them over.
# What the kernel gave worker i is what its NTA received (msgs_in), less
# what was handed in to it, plus what it handed out: a worker that owns
# none of the K calls (all K Call-IDs hash to the other one: 1 run in 64)
# receives nothing in NTA.  msgs_in is published on the worker's 1 s tick.
from_kernel() {
	local in hin hout
	in=$(worker_counter "$1" msgs_in) && hin=$(worker_counter "$1" handed_in) &&
		hout=$(worker_counter "$1" handed_out) || return 1
	echo $((in - hin + hout))
}
_reached() { [ "$(from_kernel "$1")" -ge 1 ] 2>/dev/null; }
hout=0 hin=0
for ((i = 0; i < CFG_WORKERS; i++)); do
	wait_for 3 _reached $i ||
		fail "worker $i got no copy from the kernel (msgs_in - handed_in + handed_out = $(from_kernel $i))"
	log "ok: worker $i got $(from_kernel $i) datagrams from the kernel"
	v=$(worker_counter $i handed_out) || fail "show workers: no handed_out for worker $i"
	hout=$((hout + v))
	v=$(worker_counter $i handed_in) || fail "show workers: no handed_in for worker $i"
	hin=$((hin + v))
done
assert_ge 1 "$hout" "datagrams handed out to another worker"
assert_eq "$hout" "$hin" "datagrams handed in (all handed out arrived)"
log "ok: ownership_retrans"
