#!/bin/bash
#
# worker_takeover — answered calls survive the crash of the worker that owns
# them.
#
# 10 calls are answered (each talks 10 s, then the caller hangs up); the
# workers that own them are killed with SIGKILL.  The restarted process of
# each index takes its calls over from the shared call table: the callers'
# BYEs, which come to that worker's own port, are relayed to the callees and
# answered, every call succeeds on both sides, `show calls` keeps listing
# them in between, and each call still ends with exactly one CDR (ANSWERED,
# hung up by the caller).

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=30
redis_start
b2b_start

N=10
uas_start uas uas_basic -m $N
uac_start uac uac_long -m $N -r 20
wait_state 5 "length == $N and all(.[]; .state == \"ANSWERED\")" "$N calls ANSWERED"
kill_owners 3 "answered calls of the previous worker"
restarted() {
	local w p
	for w in $OWNERS; do
		p=$(cli_json workers ".[] | select(.index == $w) | .pid")
		[ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "${VICTIM[$w]}" ] || return 1
	done
}
wait_for 3 restarted || fail "the killed workers were not restarted"
assert_eq "$N" "$(sed -E 's/.*took over ([0-9]+) answered calls.*/\1/' "$T/takeovers" |
	awk '{ n += $1 } END { print n + 0 }')" "answered calls taken over"
assert_eq "$N" "$(cli_json calls 'length')" "show calls after the takeover"

sipp_wait uac || fail "uac exited $? (a call failed after the takeover)"
uas_wait uas
assert_sipp_ok uac $N
assert_sipp_ok uas $N
assert_eq "$N" "$(msg_count "$T/uas.msg" recv BYE)" "every callee got its BYE"
assert_eq "$N" "$(msg_count "$T/uac.msg" recv 200/BYE)" "every caller's BYE was answered"
wait_for 5 calls_empty || fail "calls left in the table: $(cli show calls)"
wait_cdrs $N
assert_eq "$N" "$(jq '[.[] | select(.disposition == "ANSWERED" and .hangup_by == "caller")] | length' "$CDR_JSON")" \
	"$N CDRs ANSWERED, hung up by the caller"
log "ok: worker_takeover"
