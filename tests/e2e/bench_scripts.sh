#!/bin/bash
#
# bench_scripts — the benchmark scripts of bench/ still run, and still
# measure what bench/README.md says they measure.
#
# Design note.  The figures in bench/README.md and in the issues' closing
# notes come from bench/run.sh and bench/compare.sh; a script that rots
# makes them impossible to reproduce.  This test runs both at a rate a
# loaded CI machine carries (100 calls/s, a few seconds), each as a child
# with its temp dirs under $T, and checks their output:
#   - run.sh: every call succeeded and left its CDR in Redis, and it gives
#     its redis-server's CPU;
#   - compare.sh with B2BUA_BENCH_SYSTEMS="harness b2bua" (Kamailio is not
#     a dependency of the project) and B2BUA_BENCH_PIN=0:0: a clean line
#     for the harness (sipp to sipp) and for b2bua, with its redis-server's
#     and sipp's CPU per call, and the summary's highest clean rate;
#   - instructions.sh at 10 calls/s for 2 and 4 s (b2bua under callgrind):
#     a count of instructions per call in the range a call costs, and its
#     table of functions;
#   - bad settings (B2BUA_BENCH_PIN, B2BUA_BENCH_SYSTEMS, instructions.sh's
#     seconds) exit 2, naming the setting, before anything starts.
# B2BUA_BENCH_WARM=0 everywhere: the once-per-boot warm-up touches most
# of the machine's memory, which a test must never do.  The scripts stop
# what they start by PID (bench/lib.sh); `timeout` bounds each run.

. "$(dirname "$0")/lib.sh"

command -v redis-server >/dev/null 2>&1 || skip "redis-server not found (apt-get install redis-server)"
command -v taskset >/dev/null 2>&1 || skip "taskset not found (util-linux)"

BENCH=$top_srcdir/bench
export B2BUA_BENCH_WARM=0 TMPDIR=$T top_srcdir top_builddir

# field LINE N: the Nth whitespace-separated field of LINE
field() { echo "$1" | awk -v n="$2" '{ print $n }'; }
numeric() { [[ "$1" =~ ^[0-9]+(\.[0-9]+)?$ ]]; }

# ---------------------------------------------------------------- run.sh

log "bench/run.sh 100 1, 2 s of calls"
B2BUA_BENCH_SECONDS=2 timeout 120 "$BENCH/run.sh" 100 1 >"$T/run.out" 2>&1 ||
	{ cat "$T/run.out" >&2; fail "bench/run.sh 100 1 exited $?"; }
grep -Eq '^successful calls +200$' "$T/run.out" ||
	{ cat "$T/run.out" >&2; fail "run.sh: not 200 successful calls"; }
grep -Eq '^failed calls +0 \(caller\), 0 \(callee\)$' "$T/run.out" ||
	fail "run.sh: failed calls: $(grep '^failed calls' "$T/run.out")"
grep -Eq '^CDRs in redis +200 \(calls 200\)$' "$T/run.out" ||
	fail "run.sh: CDRs: $(grep '^CDRs in redis' "$T/run.out")"
grep -Eq '^redis CPU +[0-9]+ ms total, [0-9]+\.[0-9] us per call ' "$T/run.out" ||
	fail "run.sh: no redis CPU line: $(grep '^redis CPU' "$T/run.out")"

# ---------------------------------------------------------------- compare.sh

log "bench/compare.sh 100: the harness and b2bua, pinned to CPU 0, 2 s steps"
B2BUA_BENCH_SYSTEMS="harness b2bua" B2BUA_BENCH_STEP_S=2 B2BUA_BENCH_PIN=0:0 \
	timeout 180 "$BENCH/compare.sh" 100 >"$T/compare.out" 2>"$T/compare.err" ||
	{ cat "$T/compare.out" "$T/compare.err" >&2; fail "bench/compare.sh 100 exited $?"; }
grep -q '^pinned: system under test on CPU 0, sipp on CPU 0$' "$T/compare.err" ||
	fail "compare.sh did not report its pinning"
h=$(grep -E '^harness +100 ' "$T/compare.out")
b=$(grep -E '^b2bua +100 ' "$T/compare.out")
[ -n "$h" ] && [ -n "$b" ] || { cat "$T/compare.out" >&2; fail "compare.sh: no harness or no b2bua line"; }
# system offered achieved ok failed shed retrans p50 / p99 us/call redis-us sipp-us clean
[ "$(field "$h" 4)" = 200 ] && [ "$(field "$h" 14)" = yes ] ||
	fail "compare.sh: the harness step is not 200 clean calls: $h"
[ "$(field "$b" 4)" = 200 ] && [ "$(field "$b" 5)" = 0 ] && [ "$(field "$b" 14)" = yes ] ||
	fail "compare.sh: the b2bua step is not 200 clean calls: $b"
for col in 11 12 13; do
	numeric "$(field "$b" "$col")" || fail "compare.sh: b2bua's column $col is not a figure: $b"
done
numeric "$(field "$h" 13)" || fail "compare.sh: the harness's sipp CPU is not a figure: $h"
grep -Eq '^highest clean rate \(calls/s\) +100 ' "$T/compare.out" ||
	fail "compare.sh: the summary does not give b2bua's highest clean rate as 100"
grep -q '^harness (sipp to sipp, nothing between): highest clean rate 100 calls/s' "$T/compare.out" ||
	fail "compare.sh: the summary does not give the harness's ceiling"

# ---------------------------------------------------------------- instructions.sh

if command -v valgrind >/dev/null 2>&1; then
	log "bench/instructions.sh 10 2 4: 20 and 40 calls under callgrind"
	timeout 300 "$BENCH/instructions.sh" 10 2 4 >"$T/instr.out" 2>&1 ||
		{ cat "$T/instr.out" >&2; fail "bench/instructions.sh 10 2 4 exited $?"; }
	ipc=$(awk '/^instructions per call/ { print $4 }' "$T/instr.out")
	# A call costs some 500 000 (bench/README.md); a tenth or ten times that
	# means the script counts something else (the wrong process, start-up).
	[[ "$ipc" =~ ^[0-9]+$ ]] && [ "$ipc" -gt 50000 ] && [ "$ipc" -lt 5000000 ] ||
		{ cat "$T/instr.out" >&2; fail "instructions.sh: instructions per call '$ipc'"; }
	[ "$(grep -c '%)' "$T/instr.out")" -ge 10 ] ||
		{ cat "$T/instr.out" >&2; fail "instructions.sh: no table of functions"; }
	log "instructions per call: $ipc"
else
	log "valgrind not found: instructions.sh not run"
fi

# ---------------------------------------------------------------- bad settings

B2BUA_BENCH_SYSTEMS=b2bua B2BUA_BENCH_PIN=one timeout 30 "$BENCH/compare.sh" 100 >/dev/null 2>"$T/pin.err"
rc=$?
[ "$rc" -eq 2 ] && grep -q 'B2BUA_BENCH_PIN=one' "$T/pin.err" ||
	fail "B2BUA_BENCH_PIN=one: exit $rc, $(cat "$T/pin.err")"
B2BUA_BENCH_SYSTEMS="b2bua asterisk" timeout 30 "$BENCH/compare.sh" 100 >/dev/null 2>"$T/sys.err"
rc=$?
[ "$rc" -eq 2 ] && grep -q 'unknown system asterisk' "$T/sys.err" ||
	fail "B2BUA_BENCH_SYSTEMS=asterisk: exit $rc, $(cat "$T/sys.err")"
timeout 30 "$BENCH/instructions.sh" 10 4 2 >/dev/null 2>"$T/instr.err"
rc=$?
[ "$rc" -eq 2 ] && grep -q 'SECONDS1 < SECONDS2' "$T/instr.err" ||
	fail "instructions.sh 10 4 2: exit $rc, $(cat "$T/instr.err")"

log "PASS"
