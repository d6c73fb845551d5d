#!/bin/bash
#
# ownership_badinput — datagrams on the public port that name no call
# never crash, stall or get handed over.
#
# With ownership by Call-ID, a worker must read a datagram's Call-ID before
# it knows where the datagram goes.  Sent from 8 source ports each (so every
# worker gets each kind; tests/sipp/own_udp_send.py): an INVITE without
# Call-ID, a BYE without Call-ID, an INVITE with an empty Call-ID, a
# response without Call-ID, "INV", "x", an empty datagram, 300 bytes of
# binary garbage and a CRLF keep-alive.  Each is dropped or answered by the
# worker that got it.  Asserted: no worker died or was restarted (same
# pids, restarts 0, no crash in the log), calls placed afterwards all work
# and land on both workers (none stalled), the table empties, the bad
# datagrams made no call and no CDR, and each request that names no call
# was counted (`unroutable`) where it landed, never handed over.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

command -v python3 >/dev/null 2>&1 || skip "python3 not found"

SINK_PORT=5090
COPIES=8
N=20
SIPP_TIMEOUT=30

# bad_files: the bad datagrams, one file each, in $T/bad/.  Requests go to
# user 9999 (no route) and name the sink in their Via.
bad_files() {
	local via="Via: SIP/2.0/UDP $ADDR:$SINK_PORT;branch=z9hG4bK-own-bad"
	mkdir -p "$T/bad"
	printf "INVITE sip:9999@$ADDR:$SIP_PORT SIP/2.0\r\n$via-1\r\nFrom: <sip:bad@$ADDR>;tag=b1\r
To: <sip:9999@$ADDR>\r\nCSeq: 1 INVITE\r\nContact: <sip:bad@$ADDR:$SINK_PORT>\r
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n" >"$T/bad/invite-no-callid"
	printf "BYE sip:9999@$ADDR:5071 SIP/2.0\r\n$via-2\r\nFrom: <sip:bad@$ADDR>;tag=b2\r
To: <sip:9999@$ADDR>;tag=b3\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n" \
		>"$T/bad/bye-no-callid"
	printf "INVITE sip:9999@$ADDR:$SIP_PORT SIP/2.0\r\n$via-3\r\nFrom: <sip:bad@$ADDR>;tag=b4\r
To: <sip:9999@$ADDR>\r\nCall-ID: \r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r
Content-Length: 0\r\n\r\n" >"$T/bad/invite-empty-callid"
	printf "SIP/2.0 200 OK\r\n$via-4\r\nFrom: <sip:bad@$ADDR>;tag=b5\r\nTo: <sip:9999@$ADDR>;tag=b6\r
CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n" >"$T/bad/response-no-callid"
	printf 'INV' >"$T/bad/short"
	printf 'x' >"$T/bad/one-byte"
	: >"$T/bad/empty"
	head -c 300 /dev/urandom >"$T/bad/garbage"
	printf '\r\n\r\n' >"$T/bad/keepalive"
}

redis_start
b2b_start
wait_for 5 redis_up || fail "not every worker connected to Redis"
uas_start sink uas_busy -p $SINK_PORT   # gets only answers: discards them
pids=$(cli_json workers '[.[].pid] | map(tostring) | join(" ")')
# (Sofia checks MSG_TRUNC at start with a "TEST" datagram to its own socket;
# on the shared public port another worker may get it: one unroutable.)
unroutable_before=$(cli_json workers '[.[].unroutable] | add')

bad_files
ports=$(udp_spray $COPIES "$T"/bad/*) || fail "cannot send the bad datagrams"
log "sent $(ls "$T/bad" | wc -l) kinds of bad datagram from ports $ports"

# The calls afterwards: one socket each (-t un), so on every worker.
uas_start uas uas_basic -m $N
uac_start uac uac_basic -m $N -r 20 -t un -max_socket 100
sipp_wait uac || fail "uac exited $? ($(sipp_stat uac 'FailedCall(C)') failed calls after the bad input)"
uas_wait uas
assert_sipp_ok uac $N
assert_sipp_ok uas $N
wait_for 5 calls_empty || fail "calls left in the table: $(cli show calls)"
assert_eq "$pids" "$(cli_json workers '[.[].pid] | map(tostring) | join(" ")')" \
	"worker pids (none died)"
assert_eq 0 "$(cli_json workers '[.[].restarts] | add')" "worker restarts"
assert_no_grep 'killed by signal|dumped core|exited with status [1-9]' "$T/b2bua.log" \
	"no worker crash in the log"
# Not a call: an INVITE without a usable Call-ID is no "call table full".
assert_no_grep 'call table full' "$T/b2bua.log" "no capacity refusal for the bad datagrams"
wait_cdrs $N
assert_eq $N "$(jq '[.[] | select(.disposition == "ANSWERED")] | length' "$CDR_JSON")" \
	"$N CDRs ANSWERED (no CDR for the bad datagrams)"
assert_eq "$CFG_WORKERS" "$(jq '[.[].worker] | unique | length' "$CDR_JSON")" \
	"workers that owned calls after the bad input"

# Every bad datagram but the response (responses are not routed) is counted
# where it landed: 8 kinds, COPIES each.
assert_eq $((8 * COPIES)) "$(($(cli_json workers '[.[].unroutable] | add') - unroutable_before))" \
	"bad datagrams counted as unroutable"
log "ok: ownership_badinput"
