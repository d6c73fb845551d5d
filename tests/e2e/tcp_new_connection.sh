#!/bin/bash
#
# tcp_new_connection — an in-dialog request that arrives on a new connection
# held by a worker that does not own the call still reaches the call
# (issue 11, items 2 and 5; worker/b2b_stream.c).
#
# 2 workers, transports ["udp", "tcp"], the callee on UDP (sipp).  The
# caller is tests/sipp/tcp_caller.py, which opens a new connection for each
# request:
#   1. INVITE on a connection to the public port (the accepting worker owns
#      the call, our 200's Contact names its own port), ACK on it, closed;
#      then a re-INVITE and a BYE, each on a new connection to the OTHER
#      worker's own TCP port: that worker relays them to the owner, which
#      relays them to the callee, and the answers come back;
#   2. the same call, its BYE on a new connection to the public port that
#      the other worker accepted (the client retries until `ss` says so);
#   3. a call whose caller sends its re-INVITE through the other worker,
#      then the callee hangs up: the owner sends the BYE to the caller's
#      Contact (its old connection is closed), where the caller takes it;
#      3b: the same with the re-INVITE on a new connection to the owner;
#   4. a BYE on a new connection for a call no worker has: 481 as before.
# Asserted for 1 and 2: every request got its 2xx on its new connection,
# the callee got the re-INVITE (1) and the BYE, the owner logged that the
# caller came back through another worker, the call table is empty after,
# and each call has exactly one CDR (ANSWERED, hung up by the caller).

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

command -v ss >/dev/null || skip "ss not found (Debian package iproute2)"

SIPP_TIMEOUT=30
redis_start
CFG_EXTRA='transports = [ "udp", "tcp" ];'
b2b_start

write_pids() {
	cli_json workers '.[] | "\(.index) \(.pid)"' >"$T/pids"
}

# caller NAME STEP...: tcp_caller.py, its lines in $T/NAME.log.
caller() {
	local name=$1
	shift
	timeout 60 python3 "$SIPP_DIR/tcp_caller.py" "$ADDR" "$SIP_PORT" "$WORKER_PORT_BASE" \
		"$CFG_WORKERS" "$T/pids" "$@" >"$T/$name.log" 2>&1
}
write_pids

# --- 1: re-INVITE and BYE on new connections to the other worker's own port
uas_start uas1 uas_reinvite -m 1
caller c1 invite:public reinvite:own@other bye:own@other ||
	fail "caller 1: $(tail -3 "$T/c1.log")"
uas_wait uas1
assert_sipp_ok uas1 1
OWNER1=$(sed -n 's/^owner //p' "$T/c1.log")
log "ok: call 1 owned by worker $OWNER1: re-INVITE and BYE answered 200 through the other"
assert_eq 3 "$(grep -c '^conn ' "$T/c1.log")" "caller 1 used three connections"
assert_grep "^final reinvite 200$" "$T/c1.log" "the re-INVITE's 200 on its new connection"
assert_grep "^final bye 200$" "$T/c1.log" "the BYE's 200 on its new connection"
assert_eq 1 "$(grep -c '^o=caller 1 3 ' "$T/uas1.msg")" "the re-INVITE's offer reached the callee"
assert_eq 1 "$(msg_count "$T/uas1.msg" recv BYE)" "the callee got the BYE"
wait_for 5 calls_empty || fail "show calls not empty after call 1: $(cli show calls)"
wait_cdrs 1
assert_cdr 0 "disposition=ANSWERED" "hangup_by=caller" "sip_code=200" "worker=$OWNER1"

# --- 2: BYE on a new connection to the public port, accepted by the other worker
uas_start uas2 uas_basic -m 1
caller c2 invite:public bye:public@other || fail "caller 2: $(tail -3 "$T/c2.log")"
uas_wait uas2
assert_sipp_ok uas2 1
OWNER2=$(sed -n 's/^owner //p' "$T/c2.log")
log "ok: call 2 owned by worker $OWNER2: BYE through the public port answered 200"
assert_eq 1 "$(msg_count "$T/uas2.msg" recv BYE)" "the callee of call 2 got the BYE"
wait_for 5 calls_empty || fail "show calls not empty after call 2: $(cli show calls)"
wait_cdrs 2
assert_eq 2 "$(jq '[.[] | select(.disposition == "ANSWERED" and .hangup_by == "caller")] | length' "$CDR_JSON")" \
	"2 CDRs ANSWERED, hung up by the caller"
assert_eq 2 "$(grep -c 'the caller came back on another connection than its INVITE' "$T/b2bua.log")" \
	"each owner saw its caller come back through the other worker"

# --- 3: the callee hangs up after the caller came back through the other worker
uas_start uas3 uas_reinvite_bye -m 1 -d 500
caller c3 invite:public reinvite:own@other answer:BYE || fail "caller 3: $(tail -3 "$T/c3.log")"
uas_wait uas3
assert_sipp_ok uas3 1
assert_grep "^recv BYE$" "$T/c3.log" "the callee's BYE reached the caller at its Contact"
wait_for 5 calls_empty || fail "show calls not empty after call 3: $(cli show calls)"
wait_cdrs 3
assert_eq 1 "$(jq '[.[] | select(.disposition == "ANSWERED" and .hangup_by == "callee")] | length' "$CDR_JSON")" \
	"call 3: one CDR, hung up by the callee"
assert_eq 3 "$(grep -c 'the caller came back on another connection than its INVITE' "$T/b2bua.log")" \
	"call 3's owner saw its caller come back through the other worker"

# --- 3b: the same, the caller's re-INVITE on a new connection to the owner itself
uas_start uas3b uas_reinvite_bye -m 1 -d 500
caller c3b invite:public reinvite:own@owner answer:BYE || fail "caller 3b: $(tail -3 "$T/c3b.log")"
uas_wait uas3b
assert_sipp_ok uas3b 1
assert_grep "^recv BYE$" "$T/c3b.log" "call 3b: the callee's BYE reached the caller at its Contact"
wait_for 5 calls_empty || fail "show calls not empty after call 3b: $(cli show calls)"
wait_cdrs 4
# The owner follows the caller to its new connection (b2b_a_leg_follow) and,
# when that one is closed too by the time the callee hangs up, sends the BYE
# to the caller's Contact (b2b_stream_caller_route): either line says so.
assert_eq 4 "$(grep -cE "the caller came back on another connection than its INVITE|the caller's latest connection is closed" "$T/b2bua.log")" \
	"call 3b's owner saw its caller come back on a new connection"

# --- 4: a call nobody has: 481, as before
if python3 - "$ADDR" "$SIP_PORT" <<'EOF'; then
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5,
                             source_address=(sys.argv[1], 0))
p = s.getsockname()[1]
s.sendall(("BYE sip:1000@%s:%s SIP/2.0\r\nVia: SIP/2.0/TCP %s:%d;branch=z9hG4bKgone;rport\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:caller@%s>;tag=a\r\nTo: <sip:1000@%s>;tag=e2e-x-0-1\r\n"
           "Call-ID: gone@tcp\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
           % (sys.argv[1], sys.argv[2], sys.argv[1], p, sys.argv[1], sys.argv[1])).encode())
sys.exit(0 if s.recv(4096).startswith(b"SIP/2.0 481 ") else 1)
EOF
	log "ok: a BYE for no call got 481"
else
	fail "a BYE for no call did not get 481"
fi

assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
