#!/bin/bash
#
# tcp_takeover — answered calls whose callers were on connections of a
# worker that crashed survive it (issue 11, item 5; worker/b2b_adopt.c,
# worker/b2b_stream.c).
#
# 2 workers, transports ["udp", "tcp"], callees on UDP (sipp).  Four
# callers (tests/sipp/tcp_caller.py) set up their calls over TCP to worker
# 0's own TCP port, so worker 0 owns them.  Worker 0 is killed with SIGKILL:
# its connections die with it.  Once the master has restarted it and the new
# process has taken the calls over from the call table, two callers come
# back on a new connection:
#   - caller 1 to worker 0's own TCP port (our Contact), which the new
#     process listens on again: its adopted dialog takes the BYE;
#   - caller 2 to the public port, on a connection worker 1 accepted:
#     worker 1 relays the BYE to worker 0 (our To tag names it).
# A third call's callee hangs up after the takeover: the new process sends
# its BYE to the caller's Contact (a port tcp_caller.py listens on), as the
# old connection is gone.  A fourth caller sends its BYE to worker 1's own
# TCP port right after the kill, before index 0 may have a process again:
# worker 1's NTA retransmits the relayed BYE (UDP) until the successor
# takes it.
# Asserted: the takeover of 4 answered calls restored as TCP A-legs, each
# BYE answered 200 on its new connection, each callee got its BYE, the
# third caller got the callee's BYE, the table empty after, and exactly one
# CDR per call (ANSWERED, hung up by the caller or the callee, worker 0).

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

command -v ss >/dev/null || skip "ss not found (Debian package iproute2)"

SIPP_TIMEOUT=60
UAS2_PORT=$((UAS_PORT + 1))
redis_start
CFG_EXTRA='transports = [ "udp", "tcp" ];'
CFG_ROUTES="$CFG_ROUTES, { prefix = \"2\"; target = \"sip:$ADDR:$UAS2_PORT;transport=udp\"; }"
write_config
b2b_start

write_pids() {
	cli_json workers '.[] | "\(.index) \(.pid)"' >"$T/pids"
}
write_pids

# caller_start NAME STEP...: tcp_caller.py in the background, its lines in
# $T/NAME.log; CALLER_PID[NAME] is its pid.
declare -A CALLER_PID
caller_start() {
	local name=$1
	shift
	timeout 120 python3 "$SIPP_DIR/tcp_caller.py" "$ADDR" "$SIP_PORT" "$WORKER_PORT_BASE" \
		"$CFG_WORKERS" "$T/pids" "$@" >"$T/$name.log" 2>&1 &
	CALLER_PID[$name]=$!
	_track "$!"
}

uas_start uas uas_basic -m 3
# The callee of call 3 hangs up 6 s after its ACK: after the takeover.
uas_start uas2 uas_send_bye -p "$UAS2_PORT" -m 1 -d 6000
caller_start c1 invite:own@0 "wait:$T/go" bye:own@owner
caller_start c2 invite:own@0 "wait:$T/go" bye:public@other
caller_start c4 invite:own@0 "wait:$T/go_now" bye:own@other
TCP_CALLER_USER=2000 caller_start c3 invite:own@0 answer:BYE
wait_state 10 'length == 4 and all(.[]; .state == "ANSWERED" and .worker == 0)' \
	"4 calls ANSWERED on worker 0"

# --- the crash
VICTIM=$(cli_json workers '.[] | select(.index == 0) | .pid')
before=$(grep -c 'took over 4 answered calls' "$T/b2bua.log")
log "killing worker 0 (pid $VICTIM)"
kill -KILL "$VICTIM"
touch "$T/go_now"   # caller 4's BYE, through worker 1, while index 0 may have no process
restarted() {
	local p
	p=$(cli_json workers '.[] | select(.index == 0) | .pid')
	[ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$VICTIM" ] &&
		[ "$(grep -c 'took over 4 answered calls' "$T/b2bua.log")" -gt "$before" ]
}
wait_for 10 restarted || fail "worker 0 was not restarted, or did not take its 4 calls over"
log "ok: worker 0 restarted, its 4 calls taken over"
assert_eq 4 "$(grep -c 'its caller was on a connection of the previous process' "$T/b2bua.log")" \
	"the 4 A-legs restored as TCP legs"
# Worker 0 listens on its own TCP port again before the callers come back.
own_tcp() { [ "$(ss -Htln "sport = :$WORKER_PORT_BASE" | grep -c "$ADDR:$WORKER_PORT_BASE")" = 1 ]; }
wait_for 5 own_tcp || fail "the new worker 0 does not listen on TCP $ADDR:$WORKER_PORT_BASE"
write_pids
touch "$T/go"

# --- the callers come back on new connections
for c in c1 c2 c4; do
	wait "${CALLER_PID[$c]}" || fail "caller $c: $(tail -3 "$T/$c.log")"
	assert_grep "^final bye 200$" "$T/$c.log" "caller $c: its BYE answered 200 on a new connection"
done
assert_grep "^conn 2 own@owner " "$T/c1.log" "caller 1 came back to worker 0's own port"
assert_grep "^conn 2 public@other " "$T/c2.log" "caller 2 came back through worker 1"
uas_wait uas
assert_sipp_ok uas 3
assert_eq 3 "$(msg_count "$T/uas.msg" recv BYE)" "every callee got its BYE"
# --- the callee of call 3 hangs up: the BYE reaches the caller at its Contact
wait "${CALLER_PID[c3]}" || fail "caller c3: $(tail -3 "$T/c3.log")"
assert_grep "^recv BYE$" "$T/c3.log" "caller 3 got the callee's BYE at its Contact"
uas_wait uas2
assert_sipp_ok uas2 1
wait_for 5 calls_empty || fail "calls left in the table: $(cli show calls)"
wait_cdrs 4
assert_eq 3 "$(jq '[.[] | select(.disposition == "ANSWERED" and .hangup_by == "caller" and (.worker | tostring) == "0")] | length' "$CDR_JSON")" \
	"3 CDRs ANSWERED, hung up by the caller, written by worker 0"
assert_eq 1 "$(jq '[.[] | select(.disposition == "ANSWERED" and .hangup_by == "callee" and (.worker | tostring) == "0")] | length' "$CDR_JSON")" \
	"1 CDR ANSWERED, hung up by the callee, written by worker 0"
for c in c1 c2 c3 c4; do
	cid=$(sed -n 's/^call-id //p' "$T/$c.log")
	cdr_index ".a_call_id == \"$cid\"" >/dev/null
done
log "ok: one CDR for each caller's call"
log "PASS"
