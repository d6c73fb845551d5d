#!/bin/bash
#
# errors — requests the daemon must refuse itself, and garbage it must
# survive (call flow 3, step 2, and the routing step).
#
#   no route for the callee            → 404
#   Max-Forwards: 0                    → 483 Too Many Hops
#   a Via naming the daemon's own      → 482 Loop Detected
#     address and port
#   junk UDP datagrams                 → dropped; no worker dies, and the
#                                        daemon still completes calls
# None of the refused INVITEs may reach the callee.

. "$(dirname "$0")/lib.sh"

b2b_start
# A callee that would answer anything routed to it: it must see nothing
# until the final, good call.
uas_start uas uas_basic -m 1

expect_code() {  # NAME CODE SIPP-ARGS...
	local name=$1 code=$2
	shift 2
	uac_run "$name" uac_expect_code -m 1 "$@"
	assert_count "$T/$name.msg" recv "$code/INVITE" 1
	assert_count "$T/$name.msg" sent ACK 1
}

expect_code noroute 404 -s 9999 -key maxfwd 70 -key extra_hdr "X-Test: no route"
expect_code hops 483 -s 1000 -key maxfwd 0 -key extra_hdr "X-Test: max-forwards 0"
expect_code loop 482 -s 1000 -key maxfwd 70 \
	-key extra_hdr "Via: SIP/2.0/UDP $ADDR:$SIP_PORT;branch=z9hG4bK-e2e-loop-1"
assert_count "$T/uas.msg" recv INVITE 0

# --- junk: each datagram from a socket of its own, so they spread over the
# workers (SO_REUSEPORT hashes the source port).
pids_before=$(cli_json workers '[.[].pid] | sort | join(" ")')
junk() { printf '%b' "$1" >"/dev/udp/$ADDR/$SIP_PORT" || fail "could not send junk"; }
for i in 1 2 3 4; do
	junk 'garbage\r\n\r\n'
	junk 'INVITE\r\n\r\n'
	junk 'INVITE sip:1000@x SIP/2.0\r\nVia: \r\nCall-ID:\r\nCSeq: x INVITE\r\nContent-Length: 99999\r\n\r\n'
	junk 'SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKnope\r\n\r\n'
	junk 'BYE sip:1000@127.0.0.1 SIP/2.0\r\nContent-Length: -1\r\n\r\n'
	junk '\x00\x01\x02\xff\xfe\r\n\r\n\r\n'
	head -c 1400 /dev/urandom >"/dev/udp/$ADDR/$SIP_PORT" || fail "could not send junk"
	head -c 1400 /dev/urandom >"/dev/udp/$ADDR/$((WORKER_PORT_BASE + i % 2))" ||
		fail "could not send junk"
done
sleep 1
alive "$B2B_PID" || fail "the master died after junk"
assert_eq "$pids_before" "$(cli_json workers '[.[].pid] | sort | join(" ")')" \
	"worker pids unchanged after junk"
assert_eq 0 "$(cli_json workers '[.[].restarts] | add')" "no worker restarted"
assert_no_grep 'restarted' "$T/b2bua.log" "no restart in the log"

# ... and it still places calls.
uac_run good uac_basic -m 1
uas_wait uas
assert_count "$T/uas.msg" recv INVITE 1
assert_count "$T/good.msg" recv 200/BYE 1

assert_eq 1 "$(stat_of 'final_codes["404"]')" "stats: final code 404"
assert_eq 1 "$(stat_of 'final_codes["483"]')" "stats: final code 483"
assert_eq 1 "$(stat_of 'final_codes["482"]')" "stats: final code 482"
assert_eq 1 "$(stat_of calls_answered)" "stats: calls_answered"
log "PASS"
