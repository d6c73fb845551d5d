#!/bin/bash
#
# bench/run.sh [--transport udp|tcp] RATE [WORKERS] — call throughput of
# b2bua on loopback.
#
# Design note.  sipp UAC → b2bua → sipp UAS, all on one loopback address of
# the benchmark's own, both legs over the transport (udp by default; tcp:
# sipp -t tn on both sides, the route target ;transport=tcp: bench_transport
# in lib.sh), RATE calls/s for RATE×20 calls of 1 s each (B2BUA_BENCH_SECONDS; the
# tests/sipp/uac_basic.xml and uas_basic.xml scenarios: INVITE/100/180/200/
# ACK, 1 s, BYE/200).  It prints
#   - calls/s achieved: successful calls / (wall time of the caller − 1 s of
#     the last call's talk time), i.e. the call set-up rate sustained;
#   - failed calls and retransmissions (both sipp sides; any retransmission
#     on loopback means someone fell behind);
#   - INVITE→200 response time p50/p90/p99 as the caller saw it, from the
#     microsecond timestamps of sipp -trace_shortmsg (sipp's own -trace_rtt
#     has a resolution of ~4 ms, too coarse on loopback), and 100→200 (our
#     100 Trying to the 200: over TCP the caller's log has no INVITE, so
#     this is the figure both transports have);
#   - b2bua CPU time per call: utime+stime of the master, the management
#     process and every worker from /proc/PID/stat, after minus before the calls, divided by calls;
#     and, apart, its redis-server's (the CDRs and call records), which
#     that figure leaves out;
#   - how the calls spread over the workers: each worker's CPU time and its
#     share of the active calls `b2bua-cli show workers --json` reported,
#     sampled every second during the run.
# B2BUA_BENCH_SECONDS=S places RATE×S calls instead (1..600; default 20):
# past 32 s a run reaches the workers' steady heap (NTA keeps a finished
# INVITE client transaction 32 s), which peak RSS then shows.
# B2BUA_BENCH_SYSCALLS=1 adds a second, slower phase after the first: a
# fresh caller and callee at B2BUA_BENCH_SYSCALL_RATE calls/s (default
# 200) for 10 s, while the workers' system calls are counted (perf stat on
# the syscall tracepoints, or strace -c -f where perf cannot, or with
# B2BUA_BENCH_SYSCALLS=strace); it prints system calls per call and the
# most frequent ones.
# Everything is bounded in time and stopped by PID; the temp dir is removed
# unless B2BUA_BENCH_KEEP=1.  The helpers shared with compare.sh,
# overload.sh and register.sh (process handling, cleanup, loopback
# address, redis-server, readiness, the sipp call run and its figures,
# system call counts) are in bench/lib.sh.

set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

usage() {
	echo "usage: $0 [--transport udp|tcp] RATE [WORKERS]   (RATE calls/s, 1..5000;" \
		"WORKERS default 2; both legs on the transport, default udp)" >&2
	exit 2
}
if [ "${1:-}" = --transport ]; then
	[ $# -ge 2 ] || usage
	bench_transport "$2" || exit 2
	shift 2
fi
bench_uint $# 1 2 || usage
RATE=$1
WORKERS=${2:-2}
bench_uint "$RATE" 1 5000 || usage
bench_uint "$WORKERS" 1 64 || usage
SYSCALLS=${B2BUA_BENCH_SYSCALLS:-0}
SYSCALL_RATE=${B2BUA_BENCH_SYSCALL_RATE:-200}
SECONDS_OF_CALLS=${B2BUA_BENCH_SECONDS:-20}
case $SYSCALLS in 0 | 1 | perf | strace) ;; *) usage ;; esac
bench_uint "$SYSCALL_RATE" 1 5000 || usage
bench_uint "$SECONDS_OF_CALLS" 1 600 || usage

command -v sipp >/dev/null 2>&1 || { echo "sipp not found: apt-get install sip-tester" >&2; exit 1; }
command -v jq >/dev/null 2>&1 || { echo "jq not found: apt-get install jq" >&2; exit 1; }
[ -x "$B2BUA" ] || { echo "$B2BUA not built: run make" >&2; exit 1; }

CALLS=$((RATE * SECONDS_OF_CALLS))
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

# Every second while the caller runs: each worker's active calls, summed
# per worker into $T/spread.txt ("index sum" lines).
sample_workers() {
	declare -A sum=()
	local i n
	while bench_alive "$UAC_PID"; do
		while read -r i n; do
			sum[$i]=$((${sum[$i]:-0} + n))
		done < <(timeout 5 "$CLI" -s "$T/cli.sock" show workers --json 2>/dev/null |
			jq -r '.[] | "\(.index) \(.active_calls)"' 2>/dev/null)
		sleep 1
	done
	for i in "${!sum[@]}"; do echo "$i ${sum[$i]}"; done | sort -n >"$T/spread.txt"
}

bench_sipp_uas "$T/run" "$ADDR" "$SIPP_DIR/uas_basic.xml" "$CALLS" "$RUN_LIMIT" || exit 1

echo "b2bua bench: $RATE calls/s, $CALLS calls of ${DURATION_MS} ms, $WORKERS workers," \
	"$BENCH_TRANSPORT, $ADDR" >&2
cpu0=$(bench_cpu_ticks "$B2B_PID" "${CHILD_PIDS[@]}")
rcpu0=$(bench_cpu_ticks "$REDIS_PID")
flt0=$(bench_minflt "${WORKER_PIDS[@]}")
for p in "${WORKER_PIDS[@]}"; do wcpu0+=("$(bench_cpu_ticks "$p")"); done
# B2BUA_BENCH_UAC_ARGS is split into words on purpose.
# shellcheck disable=SC2086
bench_sipp_uac_start "$T/run" "$ADDR" "$SIPP_DIR/uac_basic.xml" "$ADDR:5060" \
	"$RATE" "$CALLS" "$DURATION_MS" "$RUN_LIMIT" ${B2BUA_BENCH_UAC_ARGS:-}
sample_workers
bench_sipp_uac_wait
cpu1=$(bench_cpu_ticks "$B2B_PID" "${CHILD_PIDS[@]}")
rcpu1=$(bench_cpu_ticks "$REDIS_PID")
flt1=$(bench_minflt "${WORKER_PIDS[@]}")
for p in "${WORKER_PIDS[@]}"; do wcpu1+=("$(bench_cpu_ticks "$p")"); done
bench_sipp_uas_wait
bench_sipp_result "$T/run" "$DURATION_MS"
uac_rc=$UAC_RC
uas_rc=$UAS_RC

cpu_ms=$(((cpu1 - cpu0) * 1000 / CLK_TCK))
rcpu_ms=$(((rcpu1 - rcpu0) * 1000 / CLK_TCK))
total_calls=$CALLS_DONE
rtt=$T/run/rtt.txt
printf '\n'
printf 'offered rate           %s calls/s, %s calls, %s ms each, %s workers, both legs %s\n' \
	"$RATE" "$CALLS" "$DURATION_MS" "$WORKERS" "$BENCH_TRANSPORT"
printf 'calls/s achieved       %s\n' "$RATE_OK"
printf 'successful calls       %s\n' "$CALLS_OK"
printf 'failed calls           %s (caller), %s (callee)\n' "$CALLS_FAILED" "$UAS_FAILED"
printf 'retransmissions        %s (caller), %s (callee)\n' "$RETRANS_UAC" "$RETRANS_UAS"
printf 'INVITE->200 ms         p50 %s  p90 %s  p99 %s  (%s calls)\n' \
	"$(bench_pct 50 "$rtt")" "$(bench_pct 90 "$rtt")" "$(bench_pct 99 "$rtt")" "$(wc -l <"$rtt")"
printf '100->200 ms            p50 %s  p90 %s  p99 %s  (%s calls)\n' \
	"$(bench_pct 50 "${rtt%.txt}100.txt")" "$(bench_pct 90 "${rtt%.txt}100.txt")" \
	"$(bench_pct 99 "${rtt%.txt}100.txt")" "$(wc -l <"${rtt%.txt}100.txt")"
printf 'b2bua CPU              %s ms total, %s us per call (master, management process, %s workers)\n' \
	"$cpu_ms" "$(bench_per "$cpu_ms" "$total_calls")" \
	"$WORKERS"
printf 'redis CPU              %s ms total, %s us per call (its CDRs and call records; not in the line above)\n' \
	"$rcpu_ms" "$(bench_per "$rcpu_ms" "$total_calls")"
printf 'worker page faults     %s in all, %s per call (minor: first touch of memory)\n' \
	"$((flt1 - flt0))" "$(awk -v f="$((flt1 - flt0))" -v n="$total_calls" 'BEGIN { printf "%.1f", n ? f / n : 0 }')"
printf 'wall time              %s ms\n' "$UAC_WALL_MS"
spread=
samples=$(awk '{ s += $2 } END { print s + 0 }' "$T/spread.txt" 2>/dev/null || echo 0)
for i in "${!WORKER_PIDS[@]}"; do
	n=$(awk -v i="$i" '$1 == i { print $2 }' "$T/spread.txt" 2>/dev/null)
	spread+="$(printf 'w%s: %s %% of calls, %s ms CPU; ' "$i" \
		"$(awk -v n="${n:-0}" -v s="$samples" 'BEGIN { printf "%.0f", s ? n * 100 / s : 0 }')" \
		"$(((wcpu1[i] - wcpu0[i]) * 1000 / CLK_TCK))")"
done
printf 'worker spread          %s(calls: share of the active calls sampled each second)\n' "$spread"

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

# The system call phase: the same calls at a modest rate, the workers'
# system calls counted from before the first INVITE to after the last BYE.
if [ "$SYSCALLS" != 0 ] && bench_alive "$B2B_PID"; then
	sc_calls=$((SYSCALL_RATE * 10))
	sc_limit=$((sc_calls / SYSCALL_RATE + 60))
	bench_sipp_uas "$T/syscalls" "$ADDR" "$SIPP_DIR/uas_basic.xml" "$sc_calls" "$sc_limit" || exit 1
	[ "$SYSCALLS" = 1 ] && SYSCALLS=
	bench_syscalls_start "$T/syscalls/count.txt" "$SYSCALLS" "${WORKER_PIDS[@]}" || exit 1
	bench_sipp_uac_start "$T/syscalls" "$ADDR" "$SIPP_DIR/uac_basic.xml" "$ADDR:5060" \
		"$SYSCALL_RATE" "$sc_calls" "$DURATION_MS" "$sc_limit"
	bench_sipp_uac_wait
	bench_syscalls_stop
	bench_sipp_uas_wait
	bench_sipp_result "$T/syscalls" "$DURATION_MS"
	printf '\nsystem calls           %s calls at %s calls/s, %s failed, counted by %s on the %s workers\n' \
		"$CALLS_DONE" "$SYSCALL_RATE" "$CALLS_FAILED" "$SYSCALL_TOOL" "$WORKERS"
	printf 'system calls per call  %s\n' \
		"$(awk -v n="$SYSCALL_TOTAL" -v c="$CALLS_DONE" 'BEGIN { printf "%.1f", c ? n / c : 0 }')"
	printf 'most frequent          %s\n' "$(bench_syscalls_top 8 "$CALLS_DONE")"
	if [ "$UAC_RC" -ne 0 ] || [ "$UAS_RC" -ne 0 ]; then
		echo "the system call phase failed calls" >&2
		exit 1
	fi
fi

bench_alive "$B2B_PID" || { echo "b2bua died during the run" >&2; exit 1; }
[ "$uac_rc" -eq 0 ] && [ "$uas_rc" -eq 0 ] || exit 1
[ "$cdrs" -eq "$total_calls" ] || { echo "CDRs: $cdrs for $total_calls calls" >&2; exit 1; }
exit 0
