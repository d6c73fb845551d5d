#!/bin/bash
#
# bench/run.sh RATE [WORKERS] — call throughput of b2bua on loopback.
#
# Design note.  sipp UAC → b2bua → sipp UAS, all on one loopback address of
# the benchmark's own, RATE calls/s for RATE×20 calls of 1 s each (the
# tests/sipp/uac_basic.xml and uas_basic.xml scenarios: INVITE/100/180/200/
# ACK, 1 s, BYE/200).  It prints
#   - calls/s achieved: successful calls / (wall time of the caller − 1 s of
#     the last call's talk time), i.e. the call set-up rate sustained;
#   - failed calls and retransmissions (both sipp sides; any retransmission
#     on loopback means someone fell behind);
#   - INVITE→200 response time p50/p90/p99 as the caller saw it, from the
#     microsecond timestamps of sipp -trace_shortmsg (sipp's own -trace_rtt
#     has a resolution of ~4 ms, too coarse on loopback);
#   - b2bua CPU time per call: utime+stime of the master, the management
#     process and every worker from /proc/PID/stat, after minus before the calls, divided by calls.
# Everything is bounded in time and stopped by PID; the temp dir is removed
# unless B2BUA_BENCH_KEEP=1.  The helpers shared with register.sh (process
# handling, cleanup, loopback address, redis-server, readiness, statistics)
# are in bench/lib.sh.

set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

usage() { echo "usage: $0 RATE [WORKERS]   (RATE calls/s, 1..5000; WORKERS default 2)" >&2; exit 2; }
bench_uint $# 1 2 || usage
RATE=$1
WORKERS=${2:-2}
bench_uint "$RATE" 1 5000 || usage
bench_uint "$WORKERS" 1 64 || usage

command -v sipp >/dev/null 2>&1 || { echo "sipp not found: apt-get install sip-tester" >&2; exit 1; }
[ -x "$B2BUA" ] || { echo "$B2BUA not built: run make" >&2; exit 1; }

CALLS=$((RATE * 20))
DURATION_MS=1000
RUN_LIMIT=$((CALLS / RATE + 60))   # seconds any sipp may run
bench_begin b2bua-bench

# A loopback address nobody uses: 127.250.x.1.
bench_pick_addr 250

# A private redis-server: every call writes its CDR there, as in production.
command -v redis-server >/dev/null 2>&1 || { echo "redis-server not found: apt-get install redis-server" >&2; exit 1; }
# Not fatal here if it does not answer: the missing CDRs fail the run at
# the end.
bench_redis_start 2>/dev/null

bench_call_config "$RATE" "$WORKERS" "udp_rcvbuf = 8388608;"

bench_b2bua_start "$WORKERS"

sipp_args=(-nostdin -buff_size "$BUF" -ci "$ADDR" -timeout "${RUN_LIMIT}s" -timeout_error)
(cd "$T" && exec timeout $((RUN_LIMIT + 15)) sipp -sf "$SIPP_DIR/uas_basic.xml" \
	-i "$ADDR" -p 5080 -m "$CALLS" "${sipp_args[@]}" \
	-trace_stat -stf "$T/uas.csv" -fd 5) >"$T/uas.out" 2>&1 &
UAS_PID=$!
PIDS+=("$UAS_PID")
deadline=$((SECONDS + 5))
until bench_udp_bound "$ADDR:5080"; do
	[ "$SECONDS" -lt "$deadline" ] || { echo "sipp UAS did not start" >&2; exit 1; }
	sleep 0.05
done

echo "b2bua bench: $RATE calls/s, $CALLS calls of ${DURATION_MS} ms, $WORKERS workers, $ADDR" >&2
cpu0=$(bench_cpu_ticks "$B2B_PID" "${CHILD_PIDS[@]}")
t0=$(date +%s%N)
# B2BUA_BENCH_UAC_ARGS is split into words on purpose.
# shellcheck disable=SC2086
(cd "$T" && exec timeout $((RUN_LIMIT + 15)) sipp -sf "$SIPP_DIR/uac_basic.xml" \
	-i "$ADDR" -p 5090 -s 1000 -m "$CALLS" -r "$RATE" -d "$DURATION_MS" \
	-l $((RATE * 4 + 100)) "${sipp_args[@]}" ${B2BUA_BENCH_UAC_ARGS:-} \
	-trace_stat -stf "$T/uac.csv" -fd 5 -trace_shortmsg \
	"$ADDR:5060") >"$T/uac.out" 2>&1 &
UAC_PID=$!
PIDS+=("$UAC_PID")
wait "$UAC_PID"
uac_rc=$?
t1=$(date +%s%N)
cpu1=$(bench_cpu_ticks "$B2B_PID" "${CHILD_PIDS[@]}")
wait "$UAS_PID"
uas_rc=$?

ok=$(bench_sipp_stat "$T/uac.csv" 'SuccessfulCall(C)')
failed=$(bench_sipp_stat "$T/uac.csv" 'FailedCall(C)')
uas_failed=$(bench_sipp_stat "$T/uas.csv" 'FailedCall(C)')
retrans_uac=$(bench_sipp_stat "$T/uac.csv" 'Retransmissions(C)')
retrans_uas=$(bench_sipp_stat "$T/uas.csv" 'Retransmissions(C)')
wall_ms=$(((t1 - t0) / 1000000))
setup_ms=$((wall_ms > DURATION_MS ? wall_ms - DURATION_MS : 1))

# INVITE→200 per call: first INVITE sent to first 200 (CSeq INVITE) received,
# from the caller's short message log (tab-separated: date, time, epoch
# seconds with microseconds, S|R, Call-ID, CSeq, first line).
cat "$T"/uac_basic_*_shortmessages.log 2>/dev/null | awk -F'\t' '
	$4 == "S" && $7 ~ /^INVITE / && !($5 in sent) { sent[$5] = $3 }
	$4 == "R" && $6 ~ / INVITE$/ && $7 ~ /^SIP\/2\.0 200/ && ($5 in sent) && !($5 in done) {
		done[$5] = 1; printf "%.3f\n", ($3 - sent[$5]) * 1000 }' | sort -n >"$T/rtt.txt"

cpu_ms=$(((cpu1 - cpu0) * 1000 / CLK_TCK))
total_calls=$((ok + failed))
printf '\n'
printf 'offered rate           %s calls/s, %s calls, %s ms each, %s workers\n' \
	"$RATE" "$CALLS" "$DURATION_MS" "$WORKERS"
printf 'calls/s achieved       %s\n' "$(awk -v n="$ok" -v ms="$setup_ms" 'BEGIN { printf "%.1f", n * 1000 / ms }')"
printf 'successful calls       %s\n' "$ok"
printf 'failed calls           %s (caller), %s (callee)\n' "$failed" "$uas_failed"
printf 'retransmissions        %s (caller), %s (callee)\n' "$retrans_uac" "$retrans_uas"
printf 'INVITE->200 ms         p50 %s  p90 %s  p99 %s  (%s calls)\n' \
	"$(bench_pct 50)" "$(bench_pct 90)" "$(bench_pct 99)" "$(wc -l <"$T/rtt.txt")"
printf 'b2bua CPU              %s ms total, %s us per call (master, management process, %s workers)\n' \
	"$cpu_ms" "$(bench_per "$cpu_ms" "$total_calls")" \
	"$WORKERS"
printf 'wall time              %s ms\n' "$wall_ms"

# Every call must have left exactly one CDR in the stream.
cdrs=0
for _ in $(seq 1 40); do
	cdrs=$(redis-cli -s "$REDIS_SOCK" XLEN b2bua:cdr 2>/dev/null || echo 0)
	[ "$cdrs" -ge "$total_calls" ] && break
	sleep 0.25
done
printf 'CDRs in redis          %s (calls %s)\n' "$cdrs" "$total_calls"
hwm=0
for p in "${WORKER_PIDS[@]}"; do
	kb=$(awk '/^VmHWM/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
	hwm=$((hwm + ${kb:-0}))
done
printf 'worker peak RSS        %s MiB in all (includes the shared call table)\n' "$((hwm / 1024))"

bench_alive "$B2B_PID" || { echo "b2bua died during the run" >&2; exit 1; }
[ "$uac_rc" -eq 0 ] && [ "$uas_rc" -eq 0 ] || exit 1
[ "$cdrs" -eq "$total_calls" ] || { echo "CDRs: $cdrs for $total_calls calls" >&2; exit 1; }
exit 0
