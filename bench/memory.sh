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
# and split, from /proc/PID/smaps, into
#   heaps        anonymous memory (malloc: Sofia's dialogs, transactions...);
#   call table   the shared table (shm/shm.c): the master's largest shared
#                anonymous mapping ("/dev/zero (deleted)"), at one address
#                in every process;
#   call pools   each worker's pool of calls (worker/b2b_pool.c), the
#                mapping "/memfd:b2bua-call-pool";
#   other        the rest: code and files, the hand-over queues, the rings.
# It is reported as
#   per unit of call_capacity   mapped: the table's size / CAPACITY, and
#                               the pools' (every worker reserves a pool of
#                               CAPACITY calls) / CAPACITY: what a full
#                               table and full pools would cost; resident:
#                               idle PSS / CAPACITY, whole and its table and
#                               pools' part (what the capacity costs before
#                               any call);
#   per established call        (held − idle) / calls held, whole and split.
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

# memory_pss PID...: "total anon shmem file table pool" PSS in kB, summed
# over PIDs: the first four from smaps_rollup, then the call table's mapping
# (at TABLE_ADDR) and the call pools' from smaps.
memory_pss() {
	local p rollup maps
	rollup=$(for p in "$@"; do
		cat "/proc/$p/smaps_rollup" 2>/dev/null
	done | awk '
		$1 == "Pss:" { t += $2 } $1 == "Pss_Anon:" { a += $2 }
		$1 == "Pss_Shmem:" { s += $2 } $1 == "Pss_File:" { f += $2 }
		END { printf "%d %d %d %d\n", t, a, s, f }')
	maps=$(for p in "$@"; do
		cat "/proc/$p/smaps" 2>/dev/null
	done | awk -v addr="$TABLE_ADDR" '
		/^[0-9a-f]+-[0-9a-f]+ / {
			kind = index($1, addr "-") == 1 ? "t" : ($0 ~ /memfd:b2bua-call-pool/ ? "p" : "")
		}
		$1 == "Pss:" && kind == "t" { t += $2 } $1 == "Pss:" && kind == "p" { p += $2 }
		END { printf "%d %d\n", t, p }')
	echo "$rollup $maps"
}

# memory_report LABEL: one line of PSS figures for every b2bua process;
# R_TOT, R_ANON, R_TABLE, R_POOL = the total, anonymous (heaps), call table
# and call pools' PSS in kB.
memory_report() {
	local shmem file w
	read -r R_TOT R_ANON shmem file R_TABLE R_POOL < <(memory_pss "$B2B_PID" "${CHILD_PIDS[@]}")
	w=$(memory_pss "${WORKER_PIDS[@]}" | awk '{ print $2 }')
	printf '%-6s PSS %8d kB  (heaps %d kB, of which workers %d kB; call table %d kB;' \
		"$1" "$R_TOT" "$R_ANON" "$w" "$R_TABLE"
	printf ' call pools %d kB; other shared %d kB; files %d kB)\n' \
		"$R_POOL" "$((shmem - R_TABLE - R_POOL))" "$file"
}

# TABLE_ADDR (hex, as in smaps) and TABLE_KB: the call table, the master's
# largest shared anonymous mapping (the hand-over queues and the board are
# the others: far smaller for any CAPACITY this script accepts);
# POOL_KB: the call pools' mapped size, summed over the workers.
memory_maps() {
	read -r TABLE_ADDR TABLE_KB < <(awk '
		/^[0-9a-f]+-[0-9a-f]+ / { z = ($0 ~ /\/dev\/zero/); a = $1; sub(/-.*/, "", a) }
		z && $1 == "Size:" && $2 > max { max = $2; addr = a }
		END { print addr, max + 0 }' "/proc/$B2B_PID/smaps")
	POOL_KB=$(for p in "${WORKER_PIDS[@]}"; do cat "/proc/$p/smaps"; done | awk '
		/^[0-9a-f]+-[0-9a-f]+ / { m = ($0 ~ /memfd:b2bua-call-pool/) }
		m && $1 == "Size:" { s += $2 } END { print s + 0 }')
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
memory_maps
memory_report idle
PSS_idle=$R_TOT ANON_idle=$R_ANON TABLE_idle=$R_TABLE POOL_idle=$R_POOL

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
PSS_held=$R_TOT ANON_held=$R_ANON TABLE_held=$R_TABLE POOL_held=$R_POOL
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

printf '\n'
printf 'calls held             %s answered at once (of %s placed at %s calls/s), %s workers\n' \
	"$active" "$CALLS" "$RATE" "$WORKERS"
printf 'PSS idle / held / after  %s / %s / %s kB (master, management process, workers)\n' \
	"$PSS_idle" "$PSS_held" "$PSS_after"
awk -v c="$CAPACITY" -v w="$WORKERS" -v t="$TABLE_KB" -v p="$POOL_KB" -v i="$PSS_idle" \
	-v it="$TABLE_idle" -v ip="$POOL_idle" 'BEGIN {
	printf "per unit of capacity   mapped %.0f B (call table %.0f B, call pools %.0f B: %d x %.0f B);\n",
		(t + p) * 1024 / c, t * 1024 / c, p * 1024 / c, w, p * 1024 / c / w
	printf "                       idle PSS %.0f B, of which call table %.0f B, call pools %.0f B" \
		" (call_capacity %d)\n", i * 1024 / c, it * 1024 / c, ip * 1024 / c, c }'
awk -v h="$PSS_held" -v i="$PSS_idle" -v ha="$ANON_held" -v ia="$ANON_idle" \
	-v ht="$TABLE_held" -v it="$TABLE_idle" -v hp="$POOL_held" -v ip="$POOL_idle" \
	-v n="$active" 'BEGIN {
	if (n == 0) n = 1
	d = (h - i) * 1024 / n; dh = (ha - ia) * 1024 / n
	dt = (ht - it) * 1024 / n; dp = (hp - ip) * 1024 / n
	printf "per established call   %.0f B (heaps %.0f B, call table %.0f B, call pool %.0f B, other %.0f B)\n",
		d, dh, dt, dp, d - dh - dt - dp }'
printf 'calls ended            %s successful, %s failed, %s CDRs\n' "$ok" "$failed" "$cdrs"

bench_alive "$B2B_PID" || { echo "b2bua died during the run" >&2; exit 1; }
[ "$uac_rc" -eq 0 ] && [ "$uas_rc" -eq 0 ] && [ "$failed" -eq 0 ] || exit 1
[ "$active" -eq "$CALLS" ] || { echo "only $active of $CALLS calls were held" >&2; exit 1; }
[ "$cdrs" -eq "$CALLS" ] || { echo "CDRs: $cdrs for $CALLS calls" >&2; exit 1; }
exit 0
