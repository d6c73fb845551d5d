#!/bin/bash
#
# tcp_bad_input — broken messages on TCP connections (issue 11, "Bad
# input"; worker/conn.c): each gets a clean answer or a clean close, is
# counted, and never stalls the worker.
#
# transports ["udp","tcp"], 2 workers, tcp_message_timeout 3 s (the idle
# timeout is left long: it must not be what closes anything here).  Each
# case from a Python peer (tests/e2e/conn_peer.py) on the public TCP port,
# with an OPTIONS over UDP answered 200 after each one, and while the
# message with a too long Content-Length hangs:
#   - a well-formed OPTIONS: answered 200, the connection stays open;
#   - a connection that closes in the middle of a REGISTER: counted in
#     b2bua_connections_closed_partial_total;
#   - Content-Length too long (500 announced, 10 sent): no answer, closed
#     3 to 7 s after the first byte, a message timeout;
#   - Content-Length too short (5 of an SDP body): the OPTIONS is answered
#     200, the rest is garbage that never ends a message: closed 3 to
#     7 s after, a message timeout;
#   - a header block over 64 KB, and a Content-Length of 200000: closed
#     within 2 s, each counted in b2bua_messages_oversized_total;
# and at the end no connection is open, each worker's descriptor count is
# back to its baseline, and the workers are the same processes.

. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || skip "python3 not found"
command -v curl >/dev/null 2>&1 || skip "curl not found (Debian package curl)"

PEER="python3 $top_srcdir/tests/e2e/conn_peer.py"
MPORT=9464
SRC=$(other_addr 1)

redis_start
CFG_EXTRA="transports = [ \"udp\", \"tcp\" ];
tcp_idle_timeout = 60;
tcp_message_timeout = 3;
metrics_address = \"$ADDR:$MPORT\";"
b2b_start
wait_for 5 redis_up || fail "the workers did not connect to Redis"

metric_sum() {
	curl -sS --max-time 5 "http://$ADDR:$MPORT/metrics" |
		awk -v n="$1" '$1 ~ "^"n"\\{" { s += $2 } END { print s + 0 }'
}
fds_of() { ls "/proc/$1/fd" | wc -l; }
open_sum() { cli_json workers '[.[].connections_open] | add'; }
none_open() { [ "$(open_sum)" = 0 ]; }
PIDS=$(cli_json workers '.[].pid')

# udp_ok WHEN: an OPTIONS over UDP to the public port gets its 200.
udp_ok() {
	local code
	code=$($PEER udp_options "$SRC" "$ADDR" "$SIP_PORT" | jq .code)
	[ "$code" = 200 ] || fail "UDP OPTIONS $1: answer $code"
	log "ok: UDP OPTIONS answered 200 $1"
}

# send KIND WAIT: one message of KIND on a new connection; its report in $T/KIND.json.
send() {
	$PEER send "$SRC" "$ADDR" "$SIP_PORT" "$1" "$2" >"$T/$1.json" ||
		fail "conn_peer send $1 exited $?"
	log "$1: $(cat "$T/$1.json")"
}

# closed_between KIND LOW HIGH: the daemon closed KIND's connection LOW..HIGH s after it sent.
closed_between() {
	local c
	c=$(jq .closed_after "$T/$1.json")
	awk -v c="$c" -v lo="$2" -v hi="$3" 'BEGIN { exit !(c != "null" && c >= lo && c < hi) }' ||
		fail "$1: closed after '$c' s, expected $2 to $3 s"
	log "ok: $1: closed by the daemon after $c s"
}

# counted METRIC N: the metric summed over workers reaches N (bounded wait).
counted() {
	_reached() { [ "$(metric_sum "$1")" -ge "$2" ]; }
	wait_for 20 _reached "$1" "$2" || fail "$1: $(metric_sum "$1"), expected $2"
	assert_eq "$2" "$(metric_sum "$1")" "$1"
}

udp_ok "at the start"
# Baseline after a first TCP connection came and went.
send good 1
assert_eq '["SIP/2.0 200 OK"]' "$(jq -c .answers "$T/good.json")" "a good OPTIONS over TCP: answered"
assert_eq null "$(jq .closed_after "$T/good.json")" "a good OPTIONS over TCP: the connection stayed open"
wait_for 20 none_open || fail "open connections: $(open_sum)"
declare -A BASE
for p in $PIDS; do BASE[$p]=$(fds_of "$p"); done

send partial 1
counted b2bua_connections_closed_partial_total 1
udp_ok "after a connection closed mid-message"

# The too long Content-Length hangs for 3 s: UDP is served meanwhile.
send cl_long 8 &
LONG=$!
_track "$LONG"
one_open() { [ "$(open_sum)" = 1 ]; }
wait_for 30 one_open || fail "the cl_long connection is not open: $(open_sum)"
udp_ok "while a message with a too long Content-Length hangs"
wait "$LONG" || fail "send cl_long failed"
_REAPED[$LONG]=1
assert_eq '[]' "$(jq -c .answers "$T/cl_long.json")" "Content-Length too long: no answer"
closed_between cl_long 3 7
counted b2bua_connections_closed_message_timeout_total 1
udp_ok "after a message with a too long Content-Length"

send cl_short 8
assert_eq '["SIP/2.0 200 OK"]' "$(jq -c .answers "$T/cl_short.json")" \
	"Content-Length too short: the OPTIONS is answered"
closed_between cl_short 3 7
counted b2bua_connections_closed_message_timeout_total 2
udp_ok "after a message with a too short Content-Length"

send huge 5
assert_eq '[]' "$(jq -c .answers "$T/huge.json")" "a header block over 64 KB: no answer"
closed_between huge 0 2
counted b2bua_messages_oversized_total 1
send huge_body 5
closed_between huge_body 0 2
counted b2bua_messages_oversized_total 2
udp_ok "after messages over 64 KB"

wait_for 30 none_open || fail "open connections at the end: $(open_sum)"
assert_eq 0 "$(metric_sum b2bua_connections_open)" "b2bua_connections_open at the end"
_fds_back() {
	local p
	for p in $PIDS; do [ "$(fds_of "$p")" = "${BASE[$p]}" ] || return 1; done
}
wait_for 30 _fds_back ||
	fail "descriptors: $(for p in $PIDS; do printf '%s=%s (was %s) ' "$p" "$(fds_of "$p")" "${BASE[$p]}"; done)"
log "ok: each worker's descriptor count is back to its baseline"
assert_eq "$PIDS" "$(cli_json workers '.[].pid')" "the workers are the same processes"
assert_eq 0 "$(metric_sum b2bua_connections_closed_idle_total)" "nothing closed as idle"
log "PASS"
