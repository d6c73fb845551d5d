#!/usr/bin/env bash
# run.sh — run libFuzzer targets for a bounded time each; fail on a crash.
#
#   FUZZ_SECONDS=60 fuzz/run.sh fuzz/fuzz_sip fuzz/fuzz_ctl ...   (make fuzz)
#
# Each target fuzz/fuzz_<name> starts from its seed corpus in the tree, fuzz/corpus/<name>/
# (read only), and keeps what it learns in fuzz/work/<name>/corpus/ of the
# build tree (not committed), so the next run goes on from there.  One
# target at a time, under nice: the machine stays usable.  A crash, leak,
# sanitizer report or timeout stops the run: the input that did it is
# fuzz/work/<name>/crash-* (or leak-*, timeout-*), and the end of the
# fuzzer's log is printed.  Otherwise one line per target gives the time
# run, the executions (and per second), the coverage and the corpus size.
set -uo pipefail

seconds=${FUZZ_SECONDS:-60}
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
[ $# -gt 0 ] || { echo "usage: FUZZ_SECONDS=N $0 FUZZER..." >&2; exit 2; }

failed=0
for target in "$@"; do
	name=$(basename "$target")
	name=${name#fuzz_}          # fuzz/fuzz_sip -> sip
	work=fuzz/work/$name
	mkdir -p "$work/corpus"
	log=$work/run.log
	# -timeout: one input may take at most 10 s; -rss_limit_mb bounds memory.
	# The outer timeout catches a fuzzer that hangs while reporting (seen once
	# after a timeout inside Sofia's allocator): it fails like a crash.
	timeout -s KILL $((seconds + 300)) nice -n 10 "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$work/" \
		"$work/corpus" "$top_srcdir/fuzz/corpus/$name" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
	corp=$(grep -o 'corp: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
	if [ "$rc" -ne 0 ]; then
		echo "fuzz: $name FAILED (exit $rc); its input: $(ls "$work"/crash-* "$work"/leak-* \
			"$work"/timeout-* "$work"/oom-* 2>/dev/null | head -n 1)"
		tail -n 60 "$log"
		failed=$((failed + 1))
		continue
	fi
	echo "fuzz: $name ok: ${seconds} s, ${runs:-?} runs (${rate:-?}/s), cov ${cov:-?}, corpus ${corp:-?}"
done
[ "$failed" -eq 0 ]
