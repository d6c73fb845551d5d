#!/bin/bash
#
# ownership_spread — one trunk (ONE sipp socket) uses every worker.
#
# The kernel's SO_REUSEPORT hashing sends every datagram of one source
# address and port to one worker; ownership by Call-ID (issue 9) must spread
# that source's calls over all workers anyway.  2000 short calls from one
# sipp socket (-t u1) to 2 workers: each worker created 40-60 % of them
# (`show workers --json`: calls_created; the CDRs' worker field says the
# same), no call failed on either side, the call table empties, 2000 CDRs.
# Then the same with 3 workers: each 25-42 %.
#
# Overload shedding is off (overload_queue_delay_ms = 0): on a loaded
# 2-core box a short queue would 503 a few INVITEs, and this test is about
# where calls go, not about overload (tests/e2e/overload.sh is).

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

N=2000
RATE=300
SIPP_TIMEOUT=45
CFG_EXTRA="overload_queue_delay_ms = 0;"

# spread_run WORKERS MIN% MAX%: a daemon with WORKERS workers, N calls from
# one sipp socket, and the assertions above.
spread_run() {
	local workers=$1 lo=$2 hi=$3 i n total=0 counts=()
	CFG_WORKERS=$workers
	write_config
	rcli DEL "$CDR_STREAM" >/dev/null
	b2b_start
	wait_for 5 redis_up || fail "not every worker connected to Redis"

	uas_start "uas$workers" uas_basic -m $N
	uac_start "uac$workers" uac_basic -m $N -r $RATE -l 400 -t u1 -d 0
	sipp_wait "uac$workers" ||
		fail "uac$workers exited $? ($(sipp_stat "uac$workers" 'FailedCall(C)') failed calls)"
	uas_wait "uas$workers"
	assert_sipp_ok "uac$workers" $N
	assert_sipp_ok "uas$workers" $N
	# One source: every INVITE came from the same address and port.
	assert_eq 1 "$(msg_header "$T/uac$workers.msg" sent INVITE Via |
		grep -o "$ADDR:[0-9]*" | sort -u | wc -l)" "distinct caller source ports"

	wait_for 10 calls_empty || fail "calls left in the table: $(cli_json calls 'length')"
	wait_cdrs $N 15
	# Who owned the calls, as the CDRs say (worker = the owner's index).
	for ((i = 0; i < workers; i++)); do
		n=$(jq --argjson w $i '[.[] | select(.worker == ($w | tostring))] | length' "$CDR_JSON")
		counts+=("$n")
	done
	log "CDRs per worker with $workers workers: ${counts[*]} (of $N)"
	for ((i = 0; i < workers; i++)); do
		[ "${counts[$i]}" -ge $((N * lo / 100)) ] && [ "${counts[$i]}" -le $((N * hi / 100)) ] ||
			fail "worker $i owns ${counts[$i]} of $N calls by the CDRs (${counts[*]}), not $lo-$hi %"
	done
	log "ok: CDRs: every worker owns $lo-$hi % of the calls"

	# The same from the workers' own counters.
	counts=()
	for ((i = 0; i < workers; i++)); do
		n=$(worker_counter $i calls_created) || fail "show workers: no calls_created for worker $i"
		counts+=("$n")
		total=$((total + n))
	done
	log "calls_created with $workers workers: ${counts[*]} (of $N)"
	assert_eq $N $total "sum of calls_created"
	for ((i = 0; i < workers; i++)); do
		[ "${counts[$i]}" -ge $((N * lo / 100)) ] && [ "${counts[$i]}" -le $((N * hi / 100)) ] ||
			fail "worker $i: calls_created ${counts[$i]} of $N (${counts[*]}), not $lo-$hi %"
	done
	log "ok: show workers: every worker created $lo-$hi % of the calls"
	b2b_stop || fail "b2bua exited $? on SIGTERM"
}

redis_start
spread_run 2 40 60
spread_run 3 25 42
log "ok: ownership_spread"
