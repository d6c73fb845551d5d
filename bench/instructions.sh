#!/bin/bash
#
# bench/instructions.sh [RATE [SECONDS1 SECONDS2]] — instructions per call
# of one worker, counted by valgrind (callgrind).
#
# Design note.  CPU time per call moves by ±10 % from one run.sh to the
# next on this VM, and the VM has no hardware counters (perf stat:
# "instructions <not supported>"), so a change worth a few percent cannot
# be seen by timing it.  The instructions a process executes are the same
# from run to run to within 0.1 %: this script counts them.  It runs
# bench/run.sh twice, with b2bua (1 worker) under callgrind, at RATE calls/s
# (default 20: what a worker slowed down some 50 times carries with no
# retransmission) for SECONDS1 and SECONDS2 seconds of calls (default 10
# and 30), and prints
#   - the worker's instructions per call, (Ir2 − Ir1) / (calls2 − calls1):
#     start-up, the same in both runs, cancels out;
#   - its 15 most costly functions (own instructions) of the longer run.
# What it does not count: the kernel's work (system calls, page faults,
# the loopback's delivery), a third of the worker's CPU under load, and
# cache misses.  At a low rate each message is a loop turn of its own, so
# the per-turn cost a busy worker shares between messages counts in full.
# Compare builds with it, not with other machines: `top_builddir=DIR`
# names the build (default this tree), as for run.sh.  Every run is
# bounded in time; the callgrind files are kept with B2BUA_BENCH_KEEP=1.

set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

usage() {
	echo "usage: $0 [RATE [SECONDS1 SECONDS2]]   (RATE 1..100 calls/s, default 20;" \
		"SECONDS1 < SECONDS2, 1..120, default 10 30)" >&2
	exit 2
}
RATE=${1:-20}
S1=${2:-10}
S2=${3:-30}
if [ $# -gt 3 ] || [ $# -eq 2 ] || ! bench_uint "$RATE" 1 100 || ! bench_uint "$S1" 1 120 ||
	! bench_uint "$S2" 1 120 || [ "$S1" -ge "$S2" ]; then
	usage
fi
command -v valgrind >/dev/null 2>&1 || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 1; }
command -v callgrind_annotate >/dev/null 2>&1 ||
	{ echo "callgrind_annotate not found (apt-get install valgrind)" >&2; exit 1; }

B2BUA_BENCH_WARM=0 bench_begin b2bua-instructions
REAL_B2BUA=$B2BUA
REAL_CLI=$CLI

# The wrapper build: b2bua under callgrind (it follows the master's fork
# into the workers, one file per process), the real CLI.
mkdir -p "$T/wrap/b2bua" "$T/wrap/cli" "$T/out" || exit 1
cat >"$T/wrap/b2bua/b2bua" <<EOF || exit 1
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file='$T/out/cg.%p' --dump-instr=no '$REAL_B2BUA' "\$@"
EOF
chmod +x "$T/wrap/b2bua/b2bua" && ln -s "$REAL_CLI" "$T/wrap/cli/b2bua-cli" || exit 1

# cg_total FILE: the instructions a callgrind file counted.
cg_total() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

# One run.sh of SECONDS; sets IR (the worker's instructions) and WORKER_CG
# (its file).  The worker is the process that counted the most.
measure() {
	local secs=$1 calls=$((RATE * $1)) f n best=0
	rm -f "$T/out/"cg.*
	top_builddir=$T/wrap B2BUA_BENCH_SECONDS=$secs B2BUA_BENCH_WARM=0 TMPDIR=$T \
		timeout $((secs * 3 + 120)) "$here/run.sh" "$RATE" 1 >"$T/run.$secs.txt" 2>&1 ||
		{ cat "$T/run.$secs.txt" >&2; echo "run.sh $RATE 1 ($secs s) failed" >&2; exit 1; }
	grep -Eq "^successful calls +$calls\$" "$T/run.$secs.txt" && grep -Eq '^failed calls +0 ' "$T/run.$secs.txt" ||
		{ cat "$T/run.$secs.txt" >&2; echo "run.sh $RATE 1 ($secs s): not $calls clean calls" >&2; exit 1; }
	for f in "$T/out/"cg.*; do
		n=$(cg_total "$f")
		[ -n "$n" ] && [ "$n" -gt "$best" ] && { best=$n; WORKER_CG=$f; }
	done
	[ "$best" -gt 0 ] || { echo "no callgrind output in $T/out" >&2; exit 1; }
	IR=$best
	cp "$WORKER_CG" "$T/worker.$secs.cg"
}

echo "b2bua instructions: $RATE calls/s, $((RATE * S1)) and $((RATE * S2)) calls, 1 worker under callgrind (build: $top_builddir)"
measure "$S1"
IR1=$IR
measure "$S2"
IR2=$IR
CALLS=$((RATE * (S2 - S1)))
[ "$IR2" -gt "$IR1" ] || { echo "the longer run counted fewer instructions ($IR2 <= $IR1)" >&2; exit 1; }
echo
printf '%-22s %d (%d calls: %d; %d calls: %d)\n' "instructions per call" $(((IR2 - IR1) / CALLS)) \
	$((RATE * S1)) "$IR1" $((RATE * S2)) "$IR2"
echo "most costly functions of the worker, own instructions ($((RATE * S2)) calls, start-up included):"
callgrind_annotate --threshold=100 "$T/worker.$S2.cg" 2>/dev/null |
	sed -n '/file:function/,$p' | sed -n '3,17p' | sed 's/\[[^]]*\]$//; s/^/  /'
