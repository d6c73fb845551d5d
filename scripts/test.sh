#!/usr/bin/env bash
# test.sh — build b2bua from a checkout and run the whole test suite.
#
# What a fresh Debian 12 machine needs, in order: the packages
# (scripts/deps.sh installs only what is missing), autoreconf, configure,
# make, then `make -j2 check` (Check unit tests and the sipp end-to-end
# tests in tests/e2e/).  On failure it prints the end of each failed test's
# log.  The last line is "tests: N passed, N failed, N skipped".
#
#   scripts/test.sh                  everything
#   TESTS="tests/e2e/busy.sh" scripts/test.sh   a subset (passed to make)
#   B2BUA_CONFIGURE_FLAGS="--enable-werror" scripts/test.sh
#                                    extra ./configure flags (CI: .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

CHECK_TIMEOUT=${CHECK_TIMEOUT:-1200}   # seconds for `make check` as a whole

scripts/deps.sh
# Split on blanks: the flags are plain words such as --enable-werror.
read -ra configure_flags <<<"${B2BUA_CONFIGURE_FLAGS:-}"

autoreconf -fi
./configure -q "${configure_flags[@]}"
make -j2

check_args=()
[ -n "${TESTS:-}" ] && check_args+=("TESTS=$TESTS")

stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
rc=0
timeout "$CHECK_TIMEOUT" make -j2 check "${check_args[@]}" || rc=$?
[ "$rc" -eq 124 ] && echo "test.sh: make check did not finish within ${CHECK_TIMEOUT} s" >&2

# Count results from the .trs files automake's test driver leaves beside
# each test's .log (only this run's: newer than the stamp).
passed=0 failed=0 skipped=0
failed_logs=()
while IFS= read -r trs; do
	result=$(sed -n 's/^:test-result: //p' "$trs" | head -n 1)
	case $result in
	PASS | XFAIL) passed=$((passed + 1)) ;;
	SKIP) skipped=$((skipped + 1)) ;;
	*)
		failed=$((failed + 1))
		failed_logs+=("${trs%.trs}.log")
		;;
	esac
done < <(find tests -name '*.trs' -newer "$stamp" | sort)

if [ "$rc" -ne 0 ]; then
	for log in "${failed_logs[@]}"; do
		echo "================ $log (last 60 lines)"
		tail -n 60 "$log" 2>/dev/null || echo "(no log)"
	done
	# A failure before any test ran (a build error in a check program).
	[ "${#failed_logs[@]}" -gt 0 ] || failed=$((failed + 1))
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
