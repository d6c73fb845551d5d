#!/bin/bash
#
# max_call_duration — an answered call older than max_call_duration is ended
# by b2bua itself: BYE to both parties (each answers 200), the call leaves
# the table, and its one CDR says ANSWERED, hung up by the system, with about
# max_call_duration billed.  Neither peer ever hangs up on its own here.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=20
CFG_EXTRA="max_call_duration = 2;"
redis_start
b2b_start

uas_start uas uas_basic -m 1
uac_start uac uac_recv_bye -m 1
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "the call ANSWERED"
sipp_wait uac || fail "uac exited $?"
uas_wait uas
assert_sipp_ok uac 1
assert_sipp_ok uas 1
assert_seq "$T/uac.msg" "caller" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 200/INVITE" "sent ACK" \
	"recv BYE" "sent 200/BYE"
assert_seq "$T/uas.msg" "callee" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK" \
	"recv BYE" "sent 200/BYE"
assert_grep 'longer than max_call_duration: ending it' "$T/b2bua.log" "the log says why"
wait_for 5 calls_empty || fail "show calls not empty: $(cli show calls)"

wait_cdrs 1
assert_cdr 0 "disposition=ANSWERED" "sip_code=200" "hangup_by=system" "host=$(node_id)"
# The tick runs once a second: ended between 2 and about 3.2 s after the answer.
assert_between 2000 3300 "$(cdr_get 0 billable_ms)" "billable_ms ~ max_call_duration"
log "ok: max_call_duration"
