#!/bin/bash
#
# bench/plot.sh [-s SECONDS] [-w WORKERS] [-o PNG] RATE... — a ladder of
# offered call rates through one b2bua, drawn with gnuplot.
#
# Design note.  The same calls as bench/run.sh (sipp UAC → b2bua → sipp UAS
# on a loopback address of the benchmark's own, tests/sipp/uac_basic.xml and
# uas_basic.xml, calls of 1 s, CDRs into a private redis-server), through
# the helpers of bench/lib.sh, but one daemon for the whole ladder and one
# step per RATE, in the order given: RATE × SECONDS calls at RATE calls/s
# (default 10 s a step), a fresh caller and callee each step.  For each step
# it records the offered rate, the set-up rate achieved (as run.sh counts
# it), INVITE→200 p50 and p99 (from the caller's microsecond message log),
# failed calls and retransmissions (both sides) into PNG's data file
# (PNG with .dat instead of .png, one line a step, '#' header), prints that
# table, and draws PNG (default bench/plot.png) with gnuplot (Debian's
# gnuplot-nox): achieved rate against offered rate on the left axis, p50
# and p99 on the right axis (logarithmic), and the line achieved = offered
# for reference.  Each step gets a fresh daemon (calls a step left behind
# must not weigh on the next); a step that lost calls is still drawn (the
# plot is meant to show where the knee is), and the ladder ends after the
# first step that achieved less than half its offered rate.  Exit status 0 when every step was clean
# (bench_clean), 1 otherwise, 2 on a usage error.  Run it under the bench
# lock and keep the ladder short (each step takes SECONDS plus a few):
#
#   flock /work/wt/bench.lock bench/plot.sh -s 8 250 500 1000 1500 2000 2500 3000

set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

usage() {
	echo "usage: $0 [-s SECONDS] [-w WORKERS] [-o PNG] RATE...  (RATE calls/s 1..5000, SECONDS 1..60 (10), WORKERS 1..64 (2), at most 12 rates)" >&2
	exit 2
}

SECS=10
WORKERS=2
PNG=$here/plot.png
while getopts "s:w:o:" opt; do
	case $opt in
	s) SECS=$OPTARG ;;
	w) WORKERS=$OPTARG ;;
	o) PNG=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] && [ $# -le 12 ] || usage
bench_uint "$SECS" 1 60 || usage
bench_uint "$WORKERS" 1 64 || usage
MAX_RATE=0
for r in "$@"; do
	bench_uint "$r" 1 5000 || usage
	[ "$r" -gt "$MAX_RATE" ] && MAX_RATE=$r
done
case $PNG in *.png) ;; *) echo "$0: -o: the output must end in .png" >&2; exit 2 ;; esac
DAT=${PNG%.png}.dat

for tool in sipp jq gnuplot redis-server; do
	command -v "$tool" >/dev/null 2>&1 ||
		{ echo "$tool not found (Debian: sip-tester, jq, gnuplot-nox, redis-server)" >&2; exit 1; }
done
[ -x "$B2BUA" ] || { echo "$B2BUA not built: run make" >&2; exit 1; }

DURATION_MS=1000
bench_begin b2bua-plot
bench_pick_addr 251
bench_redis_start 2>/dev/null
bench_call_config "$MAX_RATE" "$WORKERS" "udp_rcvbuf = 8388608;"

# b2bua_restart: a fresh daemon for the next step, so that calls a step
# left behind (past the knee) do not weigh on the next one.
b2bua_restart() {
	local p exe
	exe=$(readlink -f "$B2BUA")
	bench_stop_pid "$B2B_PID" 10
	bench_forget "$B2B_PID"
	# A worker that outlived its master (killed after the grace): ours only
	# while it still runs the b2bua binary.
	for p in "${CHILD_PIDS[@]}"; do
		[ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$exe" ] && kill -KILL "$p" 2>/dev/null
	done
	mv "$T/b2bua.log" "$T/b2bua.$n.log"
	bench_b2bua_start "$WORKERS"
}

# step N RATE: one rung of the ladder; appends its line to $DAT and returns
# 0 when it was clean.
step() {
	local dir=$T/step$1 rate=$2 calls=$(($2 * SECS)) limit=$((SECS + 30)) clean=0
	bench_sipp_uas "$dir" "$ADDR" "$SIPP_DIR/uas_basic.xml" "$calls" "$limit" || exit 1
	bench_sipp_uac_start "$dir" "$ADDR" "$SIPP_DIR/uac_basic.xml" "$ADDR:5060" \
		"$rate" "$calls" "$DURATION_MS" "$limit"
	bench_sipp_uac_wait
	bench_sipp_uas_wait
	bench_sipp_result "$dir" "$DURATION_MS"
	bench_clean "$calls" "$rate" || clean=1
	printf '%s %s %s %s %s %s %s\n' "$rate" "$RATE_OK" \
		"$(bench_pct 50 "$dir/rtt.txt")" "$(bench_pct 99 "$dir/rtt.txt")" \
		"$((CALLS_FAILED + UAS_FAILED))" "$((RETRANS_UAC + RETRANS_UAS))" "$calls" >>"$DAT"
	return "$clean"
}

{
	echo "# bench/plot.sh -s $SECS -w $WORKERS $*  ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
	echo "# offered_cps achieved_cps p50_ms p99_ms failed retrans calls"
} >"$DAT"
rc=0
n=0
for rate in "$@"; do
	n=$((n + 1))
	echo "b2bua plot: step $n of $#: $rate calls/s for $SECS s, $WORKERS workers, $ADDR" >&2
	if [ "$n" -eq 1 ]; then bench_b2bua_start "$WORKERS"; else b2bua_restart; fi
	step "$n" "$rate" || rc=1
	bench_alive "$B2B_PID" || { echo "b2bua died during step $n" >&2; exit 1; }
	# Below half the offered rate the knee is behind us: higher rungs would
	# only load the machine longer and draw the same collapse.
	if awk -v a="$RATE_OK" -v r="$rate" 'BEGIN { exit !(a < r / 2) }'; then
		echo "b2bua plot: $RATE_OK of $rate calls/s achieved: past the knee, ladder ended" >&2
		break
	fi
done
sed -n '1p' "$DAT"
sed -e '1d' -e '2s/^# //' "$DAT" | column -t

gnuplot <<EOF || { echo "gnuplot failed" >&2; exit 1; }
set terminal pngcairo size 900,540 font "DejaVu Sans,10"
set output "$PNG"
set title "b2bua: $WORKERS workers, calls of 1 s, sipp on loopback ($(nproc) CPUs shared with sipp)\n$(sed -n '1s/^# //p' "$DAT")" noenhanced
set xlabel "offered rate (calls/s)"
set ylabel "achieved set-up rate (calls/s)"
set y2label "INVITE → 200 (ms, log scale)"
set key top left box opaque
set grid xtics ytics
set xrange [0:*]
set yrange [0:*]
set logscale y2
set y2range [0.5:*]
set y2tics
set ytics nomirror
set datafile commentschars "#"
plot "$DAT" using 1:1 with lines dashtype 2 lc rgb "#999999" title "achieved = offered", \
     "$DAT" using 1:2 with linespoints pt 7 lw 2 lc rgb "#1f77b4" title "achieved (calls/s)", \
     "$DAT" using 1:3 axes x1y2 with linespoints pt 5 lw 2 lc rgb "#2ca02c" title "p50 INVITE→200 (ms)", \
     "$DAT" using 1:4 axes x1y2 with linespoints pt 9 lw 2 lc rgb "#d62728" title "p99 INVITE→200 (ms)"
EOF
echo "b2bua plot: $PNG ($(stat -c %s "$PNG") bytes), data $DAT" >&2
exit "$rc"
