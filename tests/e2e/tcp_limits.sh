#!/bin/bash
#
# tcp_limits — the worker's own defence of its TCP connections (issue 11,
# worker/conn.c): tcp_max_per_source, tcp_max_connections,
# tcp_idle_timeout and tcp_message_timeout, while real calls go on.
#
# transports ["udp","tcp"], 2 workers, per worker at most 8 connections
# and 3 per source IP, 8 s idle, 3 s per message.  A sipp UDP call load
# runs throughout.  Asserted:
#   - a flood of 30 silent connections from each of three other loopback
#     addresses: each worker keeps exactly 3 from the first two sources and
#     2 from the third (its 8), the other 74 are closed at once (seen
#     within 4 s: the peer opens them all first), counted as refused;
#     `show workers` and b2bua_connections_open say 8 per worker
#     meanwhile;
#   - the 16 kept connections, silent, are closed after the idle timeout
#     (8 to 12 s after their connect: the 1 s tick, a loaded machine),
#     counted as idle;
#   - a slow-loris (a REGISTER at one byte a second) is closed 3 to 7 s
#     after its first byte, counted as a message timeout, while a peer
#     that sends only CRLF keepalives every second for 10 s outlives the
#     idle timeout, and a sipp call over TCP (-t tn) completes;
#   - the UDP load and the TCP call end with no failed call; afterwards
#     no connection is open (CLI and metrics) and each worker's descriptor
#     count is back to what it was before the flood.
# The 8 per worker is exact unless the kernel hashed fewer than 3 of one
# source's 30 connections to one worker (odds about 1 in 10^6 per run).

. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || skip "python3 not found"
command -v curl >/dev/null 2>&1 || skip "curl not found (Debian package curl)"

PEER="python3 $top_srcdir/tests/e2e/conn_peer.py"
MPORT=9464
S1=$(other_addr 1)
S2=$(other_addr 2)
S3=$(other_addr 3)

redis_start
CFG_EXTRA="transports = [ \"udp\", \"tcp\" ];
tcp_idle_timeout = 8;
tcp_message_timeout = 3;
tcp_max_connections = 8;
tcp_max_per_source = 3;
metrics_address = \"$ADDR:$MPORT\";"
b2b_start
wait_for 5 redis_up || fail "the workers did not connect to Redis"

# workers_sum FIELD: a `show workers --json` field summed over the workers.
workers_sum() { cli_json workers "[.[].$1] | add"; }
# metric_sum NAME: a per-worker metric summed over the workers.
metric_sum() {
	curl -sS --max-time 5 "http://$ADDR:$MPORT/metrics" |
		awk -v n="$1" '$1 ~ "^"n"\\{" { s += $2 } END { print s + 0 }'
}
metric_of() {  # NAME WORKER
	curl -sS --max-time 5 "http://$ADDR:$MPORT/metrics" |
		awk -v s="$1{worker=\"$2\"}" '$1 == s { print $2 }'
}
fds_of() { ls "/proc/$1/fd" | wc -l; }
PIDS=$(cli_json workers '.[].pid')

# --- a warm-up call, then each worker's descriptors
uas_start uas uas_basic -m 127
uac_run warm uac_basic -m 1
declare -A BASE
for p in $PIDS; do BASE[$p]=$(fds_of "$p"); done
log "descriptors before: $(for p in $PIDS; do printf '%s=%s ' "$p" "${BASE[$p]}"; done)"

# --- the UDP load, throughout (125 calls at 5 a second)
uac_start load uac_basic -m 125 -r 5 -d 500

# --- the flood
$PEER flood "$S1,$S2,$S3" "$ADDR" "$SIP_PORT" 30 20 >"$T/flood.json" &
FLOOD=$!
_track "$FLOOD"
_flooded() { [ "$(metric_sum b2bua_connections_refused_total)" -ge 74 ]; }
wait_for 30 _flooded || fail "refused connections: $(metric_sum b2bua_connections_refused_total) of 74"
for i in 0 1; do
	assert_eq 8 "$(worker_counter $i connections_open)" "worker $i: open connections (show workers)"
	assert_eq 8 "$(metric_of b2bua_connections_open $i)" "worker $i: b2bua_connections_open"
done
assert_eq 74 "$(metric_sum b2bua_connections_refused_total)" "connections refused at accept"

# --- the kept ones are closed when idle
_all_closed() { [ "$(workers_sum connections_open)" = 0 ]; }
wait_for 30 _all_closed || fail "connections still open: $(workers_sum connections_open)"
wait "$FLOOD" || fail "conn_peer flood exited $?"
_REAPED[$FLOOD]=1
assert_eq 16 "$(metric_sum b2bua_connections_closed_idle_total)" "connections closed idle"
assert_eq 90 "$(jq '.closed_after | map(select(. != null)) | length' "$T/flood.json")" \
	"the flood's connections all closed by the daemon"
assert_eq 74 "$(jq '.closed_after | map(select(. < 4)) | length' "$T/flood.json")" \
	"closed at once (over a limit)"
assert_eq 16 "$(jq '.closed_after | map(select(. >= 8 and . < 12)) | length' "$T/flood.json")" \
	"closed after 8 to 12 s (idle)"

# --- a slow-loris, a peer with keepalives, a call over TCP
$PEER trickle "$S1" "$ADDR" "$SIP_PORT" 1 15 >"$T/trickle.json" &
TRICKLE=$!
_track "$TRICKLE"
$PEER keepalive "$S2" "$ADDR" "$SIP_PORT" 1 10 >"$T/keepalive.json" &
KEEP=$!
_track "$KEEP"
uac_start tcp uac_basic -m 1 -d 1000 -t tn -max_socket 100
sipp_wait tcp || fail "the TCP call: sipp exited $?"
assert_sipp_ok tcp 1
wait "$TRICKLE" || fail "conn_peer trickle exited $?"
_REAPED[$TRICKLE]=1
wait "$KEEP" || fail "conn_peer keepalive exited $?"
_REAPED[$KEEP]=1
closed=$(jq .closed_after "$T/trickle.json")
sent=$(jq .sent "$T/trickle.json")
awk -v c="$closed" 'BEGIN { exit !(c != "null" && c >= 3 && c < 7) }' ||
	fail "slow-loris closed after '$closed' s (expected 3 to 7 s): $(cat "$T/trickle.json")"
log "ok: slow-loris closed after $closed s, $sent bytes of $(jq .length "$T/trickle.json") sent"
assert_eq 1 "$(metric_sum b2bua_connections_closed_message_timeout_total)" \
	"connections closed by the message timeout"
assert_eq null "$(jq .closed_after "$T/keepalive.json")" \
	"a peer sending CRLF keepalives every second outlived the 8 s idle timeout"

# --- the load ends clean; nothing is left open
sipp_wait load || fail "the UDP load: sipp exited $?"
assert_sipp_ok load 125
uas_wait uas
assert_sipp_ok uas 127
wait_for 30 _all_closed || fail "connections still open: $(workers_sum connections_open)"
for i in 0 1; do
	assert_eq 0 "$(worker_counter $i connections_open)" "worker $i: open connections at the end"
	assert_eq 0 "$(metric_of b2bua_connections_open $i)" "worker $i: b2bua_connections_open at the end"
done
_fds_back() {
	local p
	for p in $PIDS; do [ "$(fds_of "$p")" = "${BASE[$p]}" ] || return 1; done
}
wait_for 30 _fds_back ||
	fail "descriptors: $(for p in $PIDS; do printf '%s=%s (was %s) ' "$p" "$(fds_of "$p")" "${BASE[$p]}"; done)"
log "ok: each worker's descriptor count is back to its baseline"
assert_eq "$PIDS" "$(cli_json workers '.[].pid')" "the workers are the same processes"
log "PASS"
