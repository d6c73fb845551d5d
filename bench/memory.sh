#!/bin/bash
#
# bench/memory.sh [CALLS [RATE [CAPACITY [WORKERS]]]] — resident memory per call.
#
# Design note.  sipp UAC → b2bua → sipp UAS on a loopback address of the
# benchmark's own (tests/sipp/uac_basic.xml and uas_basic.xml).  The caller
# places CALLS calls (default 20000) at RATE calls/s (default 400), every one
# held long enough that all of them are answered at once, and stays answered
# EXPIRE_S (40) s more: Sofia keeps a finished transaction about 32 s
# (64 × T1), so what is left then is what an established call costs for as
# long as it lasts.  call_capacity is CAPACITY (default CALLS + CALLS / 4).
#
# Resident memory is the PSS (proportional set size) from
# /proc/PID/smaps_rollup of the master, the management process and every
# worker: the shared call table, mapped by all of them, is counted once
# (each process is charged its share).  It is taken
#   idle   after start-up, before any call;
#   held   with every call answered and the transactions expired;
#   after  once the calls ended (BYE) and their CDRs are written.
# and reported as
#   per unit of call_capacity   idle PSS / CAPACITY, and the table's mapped
#                               size / CAPACITY (what a full table costs);
#   per established call        (held − idle) / CALLS.
# The split of each figure into anonymous memory (heaps), shared memory
# (the call table) and file pages (code) comes from the same file.
#
# B2BUA_MEMORY_CONF adds config lines (as bench_call_config's LINES).
# Everything is bounded in time (sipp -timeout and timeout) and stopped by
# PID (bench/lib.sh); the temp dir is removed unless B2BUA_BENCH_KEEP=1.
# Exit status 0 when every call was answered and ended cleanly.

set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

usage() {
	echo "usage: $0 [CALLS [RATE [CAPACITY [WORKERS]]]]" >&2
	echo "  CALLS 1..200000 (default 20000), RATE calls/s 1..2000 (default 400)," >&2
	echo "  CAPACITY >= CALLS (default CALLS + CALLS/4), WORKERS 1..64 (default 1)" >&2
	exit 2
}
bench_uint $# 0 4 || usage
CALLS=${1:-20000}
RATE=${2:-400}
bench_uint "$CALLS" 1 200000 || usage
bench_uint "$RATE" 1 2000 || usage
CAPACITY=${3:-$((CALLS + CALLS / 4))}
WORKERS=${4:-1}
bench_uint "$CAPACITY" "$CALLS" 4194304 || usage
bench_uint "$WORKERS" 1 64 || usage

command -v sipp >/dev/null 2>&1 || { echo "sipp not found: apt-get install sip-tester" >&2; exit 1; }
command -v redis-server >/dev/null 2>&1 || { echo "redis-server not found" >&2; exit 1; }
[ -x "$B2BUA" ] || { echo "$B2BUA not built: run make" >&2; exit 1; }

EXPIRE_S=40                               # > NTA's 32 s for finished transactions
PLACE_S=$(((CALLS + RATE - 1) / RATE))    # time to place every call
HOLD_S=$((PLACE_S + EXPIRE_S + 20))       # each call's talk time (-d)
RUN_LIMIT=$((PLACE_S + HOLD_S + 120))     # seconds any sipp may run

# memory_pss PID...: "total anon shmem file" PSS in kB, summed over PIDs.
memory_pss() {
	local p
	for p in "$@"; do
		cat "/proc/$p/smaps_rollup" 2>/dev/null
	done | awk '
		$1 == "Pss:" { t += $2 } $1 == "Pss_Anon:" { a += $2 }
		$1 == "Pss_Shmem:" { s += $2 } $1 == "Pss_File:" { f += $2 }
		END { printf "%d %d %d %d\n", t, a, s, f }'
}

# memory_report LABEL: one line of PSS figures for every b2bua process;
# R_TOT, R_ANON, R_SHMEM = the total, anonymous and shared PSS in kB.
memory_report() {
	local file w
	read -r R_TOT R_ANON R_SHMEM file < <(memory_pss "$B2B_PID" "${CHILD_PIDS[@]}")
	w=$(memory_pss "${WORKER_PIDS[@]}" | awk '{ print $2 }')
	printf '%-6s PSS %8d kB  (anon %d kB, of which workers %d kB; call table %d kB; files %d kB)\n' \
		"$1" "$R_TOT" "$R_ANON" "$w" "$R_SHMEM" "$file"
}

bench_begin b2bua-memory
bench_pick_addr 251
bench_redis_start 2>/dev/null
# B2BUA_MEMORY_CONF: more config lines, e.g. "session_expires = 0;" to see
# what session timers cost.
bench_call_config "$RATE" "$WORKERS" "udp_rcvbuf = 8388608;
${B2BUA_MEMORY_CONF:-}"
# The table is sized here, not by RATE as bench_call_config does.
sed -i "s/^call_capacity = .*/call_capacity = $CAPACITY;/" "$T/b2bua.conf"
bench_b2bua_start "$WORKERS"

sipp_args=(-nostdin -buff_size "$BUF" -ci "$ADDR" -timeout "${RUN_LIMIT}s" -timeout_error)
(cd "$T" && exec timeout $((RUN_LIMIT + 15)) sipp -sf "$SIPP_DIR/uas_basic.xml" \
	-i "$ADDR" -p 5080 -m "$CALLS" "${sipp_args[@]}" \
	-trace_stat -stf "$T/uas.csv" -fd 1) >"$T/uas.out" 2>&1 &
UAS_PID=$!
PIDS+=("$UAS_PID")
deadline=$((SECONDS + 5))
until bench_udp_bound "$ADDR:5080"; do
	[ "$SECONDS" -lt "$deadline" ] || { echo "sipp UAS did not start" >&2; exit 1; }
	sleep 0.05
done

echo "b2bua memory: $CALLS calls at $RATE calls/s held ${HOLD_S} s, call_capacity $CAPACITY," \
	"$WORKERS workers, $ADDR" >&2
sleep 2
memory_report idle
PSS_idle=$R_TOT ANON_idle=$R_ANON SHMEM_idle=$R_SHMEM

(cd "$T" && exec timeout $((RUN_LIMIT + 15)) sipp -sf "$SIPP_DIR/uac_basic.xml" \
	-i "$ADDR" -p 5090 -s 1000 -m "$CALLS" -r "$RATE" -d $((HOLD_S * 1000)) \
	-l $((CALLS + 100)) "${sipp_args[@]}" \
	-trace_stat -stf "$T/uac.csv" -fd 1 "$ADDR:5060") >"$T/uac.out" 2>&1 &
UAC_PID=$!
PIDS+=("$UAC_PID")

# Every call answered (the caller's current calls all in their pause), at
# most PLACE_S + 60 s; then the transactions expire.
deadline=$((SECONDS + PLACE_S + 60))
until [ "$(bench_sipp_stat "$T/uas.csv" 'CurrentCall')" -ge "$CALLS" ]; do
	bench_alive "$UAC_PID" || { echo "the caller ended early: $(tail -n 3 "$T/uac.out")" >&2; exit 1; }
	[ "$SECONDS" -lt "$deadline" ] ||
		{ echo "not every call answered in $((PLACE_S + 60)) s" >&2; exit 1; }
	failed=$(bench_sipp_stat "$T/uac.csv" 'FailedCall(C)')
	# A refused call (503 from overload control) is not held: the figures would be off.
	[ "$failed" -eq 0 ] ||
		{ echo "$failed calls failed during set-up: try a lower RATE" >&2; exit 1; }
	sleep 1
done
echo "all $CALLS calls answered; waiting ${EXPIRE_S} s for the transactions to expire" >&2
sleep "$EXPIRE_S"
memory_report held
PSS_held=$R_TOT ANON_held=$R_ANON SHMEM_held=$R_SHMEM
active=$(bench_sipp_stat "$T/uas.csv" 'CurrentCall')

echo "waiting for the calls to end (BYE)" >&2
wait "$UAC_PID"
uac_rc=$?
wait "$UAS_PID"
uas_rc=$?
ok=$(bench_sipp_stat "$T/uac.csv" 'SuccessfulCall(C)')
failed=$(bench_sipp_stat "$T/uac.csv" 'FailedCall(C)')
cdrs=0
for _ in $(seq 1 40); do
	cdrs=$(bench_rcli XLEN b2bua:cdr 2>/dev/null || echo 0)
	[ "$cdrs" -ge "$CALLS" ] && break
	sleep 0.25
done
memory_report after
PSS_after=$R_TOT

# The call table: the shared anonymous mapping, "/dev/zero (deleted)" in smaps.
table_kb=$(awk '/^[0-9a-f]+-[0-9a-f]+ / { z = ($0 ~ /\/dev\/zero/) }
	z && $1 == "Size:" { s += $2 } END { print s + 0 }' "/proc/$B2B_PID/smaps")

printf '\n'
printf 'calls held             %s answered at once (of %s placed at %s calls/s), %s workers\n' \
	"$active" "$CALLS" "$RATE" "$WORKERS"
printf 'PSS idle / held / after  %s / %s / %s kB (master, management process, workers)\n' \
	"$PSS_idle" "$PSS_held" "$PSS_after"
awk -v i="$PSS_idle" -v c="$CAPACITY" -v t="$table_kb" 'BEGIN {
	printf "per unit of capacity   %.0f B idle PSS / call_capacity %d; call table mapped %.0f B\n",
		i * 1024 / c, c, t * 1024 / c }'
awk -v h="$PSS_held" -v i="$PSS_idle" -v ha="$ANON_held" -v ia="$ANON_idle" \
	-v hs="$SHMEM_held" -v is="$SHMEM_idle" -v n="$active" 'BEGIN {
	if (n == 0) n = 1
	printf "per established call   %.0f B (heaps %.0f B, call table %.0f B)\n",
		(h - i) * 1024 / n, (ha - ia) * 1024 / n, (hs - is) * 1024 / n }'
printf 'calls ended            %s successful, %s failed, %s CDRs\n' "$ok" "$failed" "$cdrs"

bench_alive "$B2B_PID" || { echo "b2bua died during the run" >&2; exit 1; }
[ "$uac_rc" -eq 0 ] && [ "$uas_rc" -eq 0 ] && [ "$failed" -eq 0 ] || exit 1
[ "$active" -eq "$CALLS" ] || { echo "only $active of $CALLS calls were held" >&2; exit 1; }
[ "$cdrs" -eq "$CALLS" ] || { echo "CDRs: $cdrs for $CALLS calls" >&2; exit 1; }
exit 0
