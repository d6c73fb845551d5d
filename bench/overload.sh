#!/bin/bash
#
# bench/overload.sh RATE [WORKERS] — overload control under a flood of new
# calls: RATE calls/s offered for 20 s (use 3× the highest rate that
# bench/run.sh passes with 0 failures on the same machine).
#
# Design note.  The same set-up as bench/run.sh (sipp UAC → b2bua → sipp
# UAS on a loopback address of our own, a private redis-server for CDRs,
# 1 s calls), with b2bua's default overload settings (overload_*,
# udp_rcvbuf) and a caller that accepts a 503 as the end of a call
# (bench/uac_overload.xml).  Every INVITE must end one of two ways, and
# the script checks, from the caller's short message log and b2bua's CLI:
#   - admitted: 200, then 0 failed calls on either side, INVITE→200 p99
#     below 100 ms, and every BYE answered 200;
#   - refused: 503 (the stateless answer of overload control);
#   - 10 s after the load, the call table is empty;
#   - the workers' RSS returns within 20 % of what it was before the load
#     (polled for up to 60 s after it: NTA keeps ended transactions 32 s).
# It prints the figures and exits 0 when every check holds, 1 otherwise.
# Everything is bounded in time and stopped by PID (bench/lib.sh);
# B2BUA_BENCH_KEEP=1 keeps the temp dir; B2BUA_BENCH_CONF adds configuration
# lines (to compare thresholds).

set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

usage() { echo "usage: $0 RATE [WORKERS]   (RATE calls/s offered, 1..20000; WORKERS default 2)" >&2; exit 2; }
bench_uint $# 1 2 || usage
RATE=$1
WORKERS=${2:-2}
bench_uint "$RATE" 1 20000 || usage
bench_uint "$WORKERS" 1 64 || usage

command -v sipp >/dev/null 2>&1 || { echo "sipp not found: apt-get install sip-tester" >&2; exit 1; }
command -v jq >/dev/null 2>&1 || { echo "jq not found: apt-get install jq" >&2; exit 1; }
[ -x "$B2BUA" ] || { echo "$B2BUA not built: run make" >&2; exit 1; }
[ -x "$CLI" ] || { echo "$CLI not built: run make" >&2; exit 1; }

CALLS=$((RATE * 20))
DURATION_MS=1000
RUN_LIMIT=80          # seconds the caller may run: 20 s of load and its tail
P99_LIMIT_MS=100
TABLE_WAIT_S=10
RSS_WAIT_S=60
bench_begin b2bua-overload
bench_pick_addr 251
command -v redis-server >/dev/null 2>&1 || { echo "redis-server not found: apt-get install redis-server" >&2; exit 1; }
bench_redis_start 2>/dev/null

# No udp_rcvbuf and no overload_* key: the defaults are what is measured,
# unless B2BUA_BENCH_CONF adds lines (e.g. "overload_queue_delay_ms = 20;").
bench_call_config "$RATE" "$WORKERS" "${B2BUA_BENCH_CONF:-}"

bench_b2bua_start "$WORKERS"

cli() { timeout 10 "$CLI" -s "$T/cli.sock" "$@"; }
stat_of() { cli show stats --json | jq -r ".$1"; }

# rss FIELD: the sum of FIELD (VmRSS, RssAnon) over the workers, in KiB.
rss() {
	local p kb sum=0
	for p in "${WORKER_PIDS[@]}"; do
		kb=$(awk -v f="$1:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null)
		sum=$((sum + ${kb:-0}))
	done
	echo "$sum"
}

sipp_args=(-nostdin -buff_size "$BUF" -ci "$ADDR" -timeout "${RUN_LIMIT}s" -timeout_error)
# The callee runs until stopped: how many calls reach it is what is measured.
(cd "$T" && exec timeout $((RUN_LIMIT + 60)) sipp -sf "$SIPP_DIR/uas_basic.xml" \
	-i "$ADDR" -p 5080 "${sipp_args[@]}" -timeout $((RUN_LIMIT + 40))s \
	-trace_stat -stf "$T/uas.csv" -fd 1) >"$T/uas.out" 2>&1 &
UAS_PID=$!
PIDS+=("$UAS_PID")
deadline=$((SECONDS + 5))
until bench_udp_bound "$ADDR:5080"; do
	[ "$SECONDS" -lt "$deadline" ] || { echo "sipp UAS did not start" >&2; exit 1; }
	sleep 0.05
done

sleep 1   # let the workers settle before the reference RSS
load0=$(cut -d' ' -f1-3 /proc/loadavg)
rss0=$(rss VmRSS)
anon0=$(rss RssAnon)
echo "b2bua overload bench: $RATE calls/s offered for 20 s, $WORKERS workers, $ADDR" >&2
cpu0=$(bench_cpu_ticks "${WORKER_PIDS[@]}")
t0=$(date +%s%N)
(cd "$T" && exec timeout $((RUN_LIMIT + 15)) sipp -sf "$here/uac_overload.xml" \
	-i "$ADDR" -p 5090 -s 1000 -m "$CALLS" -r "$RATE" -d "$DURATION_MS" \
	-l $((RATE * 4 + 100)) "${sipp_args[@]}" \
	-trace_stat -stf "$T/uac.csv" -fd 1 -trace_shortmsg \
	"$ADDR:5060") >"$T/uac.out" 2>&1 &
UAC_PID=$!
PIDS+=("$UAC_PID")
wait "$UAC_PID"
uac_rc=$?
t1=$(date +%s%N)
cpu1=$(bench_cpu_ticks "${WORKER_PIDS[@]}")
rss_peak=$(rss VmHWM)

# Per Call-ID, from the caller's short message log (tab-separated: date,
# time, epoch seconds with microseconds, S|R, Call-ID, CSeq, first line):
# INVITE sent, 200 or 503 to it received, BYE sent, 200 to the BYE received.
cat "$T"/uac_overload_*_shortmessages.log 2>/dev/null | awk -F'\t' -v rtt="$T/rtt.txt" '
	$4 == "S" && $7 ~ /^INVITE / && !($5 in sent) { sent[$5] = $3; invites++ }
	$4 == "R" && $6 ~ / INVITE$/ && $7 ~ /^SIP\/2\.0 200/ && ($5 in sent) && !($5 in ok) {
		ok[$5] = 1; admitted++; printf "%.3f\n", ($3 - sent[$5]) * 1000 >rtt }
	$4 == "R" && $6 ~ / INVITE$/ && $7 ~ /^SIP\/2\.0 503/ && !($5 in no) { no[$5] = 1; refused++ }
	$4 == "R" && $6 ~ / INVITE$/ && $7 ~ /^SIP\/2\.0 [4-6]/ && $7 !~ / 503 / && !($5 in bad) {
		bad[$5] = 1; other++ }
	$4 == "S" && $7 ~ /^BYE / && !($5 in bye) { bye[$5] = 1; byes++ }
	$4 == "R" && $6 ~ / BYE$/ && $7 ~ /^SIP\/2\.0 200/ && !($5 in byeok) { byeok[$5] = 1; byes_ok++ }
	END { printf "%d %d %d %d %d %d\n", invites, admitted, refused, other, byes, byes_ok }' \
	>"$T/counts.txt"
read -r invites admitted refused other byes byes_ok <"$T/counts.txt"
sort -n -o "$T/rtt.txt" "$T/rtt.txt" 2>/dev/null || : >"$T/rtt.txt"
failed=$(bench_sipp_stat "$T/uac.csv" 'FailedCall(C)')
retrans_uac=$(bench_sipp_stat "$T/uac.csv" 'Retransmissions(C)')

# The call table 10 s after the load; the callee's own count then.
sleep "$TABLE_WAIT_S"
active=$(stat_of calls_active)
shed=$(stat_of overload_refused)
uas_failed=$(bench_sipp_stat "$T/uas.csv" 'FailedCall(C)')
uas_ok=$(bench_sipp_stat "$T/uas.csv" 'SuccessfulCall(C)')

# RSS back within 20 % of its start (idle workers trim every 5 s).
rss_s=-1
for ((i = TABLE_WAIT_S; i <= RSS_WAIT_S; i++)); do
	rss1=$(rss VmRSS)
	anon1=$(rss RssAnon)
	if [ $((rss1 * 100)) -le $((rss0 * 120)) ]; then rss_s=$i; break; fi
	sleep 1
done

p99=$(bench_pct 99)
printf '\n'
printf 'offered                %s calls/s for 20 s: %s INVITEs sent, %s workers\n' \
	"$RATE" "$invites" "$WORKERS"
printf 'admitted (200)         %s, %s calls/s\n' "$admitted" \
	"$(awk -v n="$admitted" 'BEGIN { printf "%.1f", n / 20 }')"
printf 'refused (503)          %s (overload_refused %s), other final codes %s\n' \
	"$refused" "$shed" "$other"
printf 'failed calls           %s (caller), %s (callee; %s calls reached it)\n' \
	"$failed" "$uas_failed" "$uas_ok"
printf 'retransmissions        %s (caller)\n' "$retrans_uac"
printf 'INVITE->200 ms         p50 %s  p90 %s  p99 %s  (%s admitted calls)\n' \
	"$(bench_pct 50)" "$(bench_pct 90)" "$p99" "$(wc -l <"$T/rtt.txt")"
printf 'BYEs answered          %s of %s\n' "$byes_ok" "$byes"
printf 'calls in the table     %s, %s s after the load\n' "$active" "$TABLE_WAIT_S"
printf 'worker RSS             %s MiB before, peak %s MiB, %s MiB after (anon %s -> %s MiB)\n' \
	"$((rss0 / 1024))" "$((rss_peak / 1024))" "$((rss1 / 1024))" "$((anon0 / 1024))" \
	"$((anon1 / 1024))"
printf 'RSS within 20 %%        %s\n' "$([ "$rss_s" -ge 0 ] && echo "after ${rss_s} s" || echo "no, after ${RSS_WAIT_S} s")"
printf 'worker CPU             %s ms in %s ms of wall time (all workers)\n' \
	"$(((cpu1 - cpu0) * 1000 / CLK_TCK))" "$(((t1 - t0) / 1000000))"
printf 'load average           %s (before the load: %s)\n' "$(cut -d' ' -f1-3 /proc/loadavg)" "$load0"

rc=0
check() {  # WHAT CONDITION...: print a failed check, remember it
	local what=$1
	shift
	"$@" || { echo "FAILED: $what" >&2; rc=1; }
}
check "b2bua alive" bench_alive "$B2B_PID"
check "caller ran to its end" [ "$uac_rc" -eq 0 ]
check "INVITEs sent = calls" [ "${invites:-0}" -eq "$CALLS" ]
check "every INVITE got 200 or 503" [ $((admitted + refused)) -eq "$invites" ]
check "some calls admitted, some refused" [ $((admitted > 0 && refused > 0)) -eq 1 ]
check "0 failed calls" [ $((failed + uas_failed)) -eq 0 ]
check "INVITE->200 p99 < $P99_LIMIT_MS ms" awk -v p="$p99" -v l="$P99_LIMIT_MS" 'BEGIN { exit !(p != "n/a" && p < l) }'
check "every BYE of an admitted call answered" [ $((byes == admitted && byes_ok == byes)) -eq 1 ]
check "table empty ${TABLE_WAIT_S} s after the load" [ "$active" -eq 0 ]
check "RSS within 20 % of its start" [ "$rss_s" -ge 0 ]
exit "$rc"
