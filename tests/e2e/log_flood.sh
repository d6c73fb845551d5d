#!/bin/bash
#
# log_flood — 20 000 malformed datagrams must not flood the log (issue 8,
# item 7).  Every kind of garbage an attacker can send for free (binary
# junk, truncated requests, bad headers, stray responses, requests with
# broken Content-Length) is sent from a few source ports so it spreads over
# the workers.  Then:
#   - no process died or restarted;
#   - the log grew by a bounded number of lines: repeated warnings of one
#     kind are rate-limited (log_limited(), b2bua/log.h), with a summary
#     that counts every line held back ("... N more in the last 10 s");
#   - the daemon still completes a real call.

. "$(dirname "$0")/lib.sh"

FLOOD_COUNT=${FLOOD_COUNT:-20000}
LOG_MAX_LINES=${LOG_MAX_LINES:-200}

command -v python3 >/dev/null 2>&1 || skip "python3 not found (Debian package python3)"

b2b_start
uas_start uas uas_basic -m 1
pids_before=$(cli_json workers '[.[].pid] | sort | join(" ")')
lines_before=$(wc -l <"$T/b2bua.log")

# Kinds of garbage, sent round-robin over 8 source sockets, to the public
# port and to each worker's own port.
python3 - "$ADDR" "$SIP_PORT" "$WORKER_PORT_BASE" "$CFG_WORKERS" "$FLOOD_COUNT" <<'PY' ||
import os, socket, sys, time
addr, pub, base, workers, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5])
kinds = [
    b"garbage\r\n\r\n",
    b"INVITE\r\n\r\n",
    b"INVITE sip:1000@x SIP/2.0\r\nVia: \r\nCall-ID:\r\nCSeq: x INVITE\r\n"
    b"Content-Length: 99999\r\n\r\n",
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKnope\r\n\r\n",
    b"BYE sip:1000@127.0.0.1 SIP/2.0\r\nContent-Length: -1\r\n\r\n",
    b"\x00\x01\x02\xff\xfe\r\n\r\n\r\n",
    b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK%d\r\n"
    b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: %d\r\nCSeq: 1 OPTIONS\r\n"
    b"Max-Forwards: 70\r\nContent-Length: 5\r\n\r\n",
]
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
ports = [pub] + [base + i for i in range(workers)]
for i in range(count):
    kind = kinds[i % len(kinds)]
    if b"%d" in kind:
        kind = kind.replace(b"%d", str(i).encode())
    if i % 11 == 0:
        kind = os.urandom(200 + i % 1200)
    try:
        socks[i % len(socks)].sendto(kind, (addr, ports[i % len(ports)]))
    except OSError:
        pass
    if i % 500 == 499:
        time.sleep(0.01)    # a flood, but one the loopback queue can hold
PY
	fail "the flood script failed"
sleep 2

alive "$B2B_PID" || fail "the master died under the flood"
assert_eq "$pids_before" "$(cli_json workers '[.[].pid] | sort | join(" ")')" \
	"worker pids unchanged after the flood"
assert_eq 0 "$(cli_json workers '[.[].restarts] | add')" "no worker restarted"

lines=$(($(wc -l <"$T/b2bua.log") - lines_before))
log "the flood of $FLOOD_COUNT datagrams added $lines log lines"
[ "$lines" -le "$LOG_MAX_LINES" ] ||
	fail "the flood added $lines log lines (at most $LOG_MAX_LINES allowed)"

# ... and it still places calls.
uac_run good uac_basic -m 1
uas_wait uas
assert_count "$T/uas.msg" recv INVITE 1
assert_count "$T/good.msg" recv 200/BYE 1

# When the window (10 s) ends, each worker sums up what it held back: every
# garbage datagram is still counted, in the lines shown or in a summary.
own_summaries() {
	[ "$(grep -c 'received garbage from udp/#.*/own: [0-9]* more in the last' \
		"$T/b2bua.log")" -ge "$CFG_WORKERS" ]
}
wait_for 15 own_summaries || fail "no summary of the held-back lines within 15 s"
sleep 1.5   # the rest of the workers' summaries, written on the next tick at the latest
garbage=$(awk '/sofia: nta_agent: received garbage from udp\// {
		if (match($0, /: [0-9]+ more in the last/)) n += substr($0, RSTART + 2, RLENGTH - 19) + 0
		else n++
	} END { print n + 0 }' "$T/b2bua.log")
log "garbage datagrams counted in the log: $garbage"
assert_ge $((FLOOD_COUNT / 4)) "$garbage" "garbage datagrams counted (shown or summed up)"
log "PASS"
