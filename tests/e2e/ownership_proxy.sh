#!/bin/bash
#
# ownership_proxy — in-dialog requests sent to the PUBLIC port, as phones
# behind an outbound proxy send them, reach the other party whichever
# worker the kernel hands them to.
#
# The caller (tests/sipp/own_proxy_uac.xml) sends its ACK, a hold and a
# resume re-INVITE with their ACKs, an INFO and its BYE to the public port
# with "Route: <sip:PUBLIC;lr>"; the callee (own_proxy_uas.xml) answers all
# of them and sends an INFO of its own the same way.  The caller uses one
# socket per call (-t un), so the calls' datagrams land on every worker;
# the callee's single socket lands on one worker only, so its INFO reaches
# a worker that does not own the call for a share of the calls.
#   1. N calls: every request reaches the other party and gets 200 (never
#      481 nor 501), both workers owned calls (CDR worker field), every CDR is
#      ANSWERED and hung up by the caller, the table empties.
#   2. N calls answered, then the worker owning the first one is SIGKILLed;
#      once the master restarted it and the successor took its calls over,
#      the callers (still in their talk pause) send the re-INVITEs, INFO and
#      BYE through the public port: all reach the callees, end normally.
# Finally the workers' hand-over counters (handed_out, handed_in) show that
# datagrams did cross between workers.  call_rest_after is 1 s: the calls
# of run 2 come to rest during the callers' pause (the taken-over ones too),
# and their requests wake them, on whichever worker they land: every call
# woke at least once (calls_woken).

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

N=16
SIPP_TIMEOUT=30

# routed_requests LOG: distinct requests (Call-ID and CSeq) a sipp run sent
# with "Route: <sip:$ADDR:$SIP_PORT;lr>" (retransmissions once).
routed_requests() {
	awk -v route="Route: <sip:$ADDR:$SIP_PORT;lr>" '
	/^[A-Z]+ message sent/ { s = 1; r = 0; id = ""; next }
	/^[A-Z]+ message received/ { s = 0; next }
	!s { next }
	{ sub(/\r$/, "") }
	$0 == route { r = 1 }
	tolower($1) == "call-id:" { id = id $2 }
	tolower($1) == "cseq:" { id = id " " $2 " " $3 }
	$0 == "" && r && id != "" { seen[id] = 1; r = 0 }
	END { print length(seen) }' "$1"
}

# proxy_checks NAME-SUFFIX: what both parties saw in run uac$1/uas$1.
proxy_checks() {
	local uac=$T/uac$1.msg uas=$T/uas$1.msg
	# No request got an error (481 or 501 from a worker without the dialog).
	assert_eq "" "$(msg_list "$uac" | awk '$1 == "recv" && $2 ~ /^[3-6][0-9][0-9]$/ { print $2 "/" $3 }' |
		sort | uniq -c | paste -sd' ')" "uac$1: error answers"
	assert_eq "" "$(msg_list "$uas" | awk '$1 == "recv" && $2 ~ /^[3-6][0-9][0-9]$/ { print $2 "/" $3 }' |
		sort | uniq -c | paste -sd' ')" "uas$1: error answers"
	assert_sipp_ok "uac$1" $N
	assert_sipp_ok "uas$1" $N
	# The callee saw every request of the caller: INVITE + 2 re-INVITEs,
	# their 3 ACKs, the INFO and the BYE; and 200 for its own INFO.
	assert_count "$uas" recv INVITE $((3 * N))
	assert_count "$uas" recv ACK $((3 * N))
	assert_count "$uas" recv INFO $N
	assert_count "$uas" recv BYE $N
	assert_count "$uas" recv 200/INFO $N
	assert_count "$uac" recv 200/INVITE $((3 * N))
	assert_count "$uac" recv 200/INFO $N
	assert_count "$uac" recv 200/BYE $N
	assert_count "$uac" recv INFO $N
	# All 7 in-dialog requests of each call (3 ACKs, 2 re-INVITEs, INFO,
	# BYE) named the public port as their Route (and went there).
	assert_eq $((7 * N)) "$(routed_requests "$uac")" "uac$1: requests routed through the public port"
}

CFG_EXTRA="call_rest_after = 1;"
redis_start
b2b_start
wait_for 5 redis_up || fail "not every worker connected to Redis"

# ---------------------------------------------------------------- 1. calls

uas_start uas1 own_proxy_uas -m $N -key pub_port $SIP_PORT
uac_start uac1 own_proxy_uac -m $N -r 10 -t un -max_socket 100 -d 10
sipp_wait uac1 || log "uac1 exited $? ($(sipp_stat uac1 'FailedCall(C)') failed calls)"
sipp_wait uas1 || log "uas1 exited $? ($(sipp_stat uas1 'FailedCall(C)') failed calls)"
proxy_checks 1
wait_for 5 calls_empty || fail "calls left in the table: $(cli show calls)"
wait_cdrs $N
assert_eq $N "$(jq '[.[] | select(.disposition == "ANSWERED" and .hangup_by == "caller")] | length' "$CDR_JSON")" \
	"$N CDRs ANSWERED, hung up by the caller"
assert_eq "$CFG_WORKERS" "$(jq '[.[].worker] | unique | length' "$CDR_JSON")" \
	"workers that owned calls (CDR worker field)"

# ---------------------------------------------------------------- 2. restart

uas_start uas2 own_proxy_uas -m $N -key pub_port $SIP_PORT
# The talk pause (-d) spans the kill and the restart; checked below.
uac_start uac2 own_proxy_uac -m $N -r 20 -t un -max_socket 100 -d 6000
wait_state 10 "length == $N and all(.[]; .state == \"ANSWERED\")" "$N calls ANSWERED"
assert_eq "$CFG_WORKERS" "$(cli_json calls '[.[].worker] | unique | length')" \
	"workers that own calls before the kill (show calls)"
victim=$(cli_json calls '.[0].worker')
owned=$(cli_json calls "[.[] | select(.worker == $victim)] | length")
vpid=$(worker_counter "$victim" pid) || fail "no pid for worker $victim"
log "killing worker $victim (pid $vpid), owner of $owned of the $N calls"
kill -KILL "$vpid"
restarted() {
	local p
	p=$(worker_counter "$victim" pid) || return 1
	[ "$p" != 0 ] && [ "$p" != "$vpid" ]
}
wait_for 5 restarted || fail "worker $victim not restarted"
wait_for 5 grep -q "took over $owned answered calls of the previous worker $victim process" \
	"$T/b2bua.log" || fail "the restarted worker did not take its $owned calls over"
assert_eq "$N" "$(cli_json calls 'length')" "show calls after the takeover"
# The callers must still be in their pause: only the initial INVITEs sent.
assert_eq "$N" "$(msg_count "$T/uac2.msg" sent INVITE)" \
	"INVITEs sent before the takeover (the restart fit in the callers' pause)"

sipp_wait uac2 || log "uac2 exited $? ($(sipp_stat uac2 'FailedCall(C)') failed calls)"
sipp_wait uas2 || log "uas2 exited $? ($(sipp_stat uas2 'FailedCall(C)') failed calls)"
proxy_checks 2
wait_for 5 calls_empty || fail "calls left in the table: $(cli show calls)"
wait_cdrs $((2 * N))
assert_eq $((2 * N)) "$(jq '[.[] | select(.disposition == "ANSWERED" and .hangup_by == "caller")] | length' "$CDR_JSON")" \
	"$((2 * N)) CDRs ANSWERED, hung up by the caller"
assert_eq "$owned" "$(jq --arg w "$victim" '[.[$n:][] | select(.worker == $w)] | length' \
	--argjson n $N "$CDR_JSON")" "run 2: CDRs of the killed worker's calls (by its successor)"

# ---------------------------------------------------------------- counters

hout=0 hin=0
for ((i = 0; i < CFG_WORKERS; i++)); do
	v=$(worker_counter $i handed_out) || fail "show workers: no handed_out for worker $i"
	hout=$((hout + v))
	v=$(worker_counter $i handed_in) || fail "show workers: no handed_in for worker $i"
	hin=$((hin + v))
done
assert_ge 1 "$hout" "datagrams handed out to another worker"
assert_ge 1 "$hin" "datagrams handed in from another worker"
woken=0
for ((i = 0; i < CFG_WORKERS; i++)); do
	v=$(worker_counter $i calls_woken) || fail "show workers: no calls_woken for worker $i"
	woken=$((woken + v))
done
assert_ge $N "$woken" "calls woken from rest (run 2's, by requests through the public port)"
log "ok: ownership_proxy"
