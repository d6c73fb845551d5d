#!/bin/bash
#
# show_calls — the operator's view of calls in progress (call flow 3, step 8).
#
# 20 calls of 10 s are set up; while they are up, `show calls` must list
# exactly those 20, ANSWERED, with the dialled callee, and the JSON form
# must agree with the text table and with what the two sipp peers saw
# (A-leg Call-IDs are the caller's, B-leg Call-IDs the callee's).  When the
# calls have ended the table is empty.

. "$(dirname "$0")/lib.sh"

N=20
CALLEE=1234

b2b_start
uas_start uas uas_basic -m $N
uac_start uac uac_long -m $N -r $N -l $N -s $CALLEE

answered() { [ "$(cli_json calls '[.[] | select(.state == "ANSWERED")] | length')" = $N ]; }
wait_for 8 answered ||
	fail "expected $N ANSWERED calls, show calls has: $(cli show calls)"

cli_json calls '.' >"$T/calls.json"
cli show calls >"$T/calls.txt" || fail "b2bua-cli show calls failed"
log "show calls:"; head -n 5 "$T/calls.txt" >&2

assert_eq $N "$(jq length "$T/calls.json")" "json: calls listed"
assert_eq $N "$(jq '[.[] | select(.state == "ANSWERED")] | length' "$T/calls.json")" \
	"json: ANSWERED calls"
assert_eq $N "$(jq --arg c "$CALLEE" '[.[] | select(.callee | contains($c))] | length' \
	"$T/calls.json")" "json: calls whose callee is $CALLEE"
assert_eq $N "$(jq '[.[] | select(.caller | contains("sipp"))] | length' "$T/calls.json")" \
	"json: calls whose caller is sipp"
assert_eq $N "$(jq '[.[] | select(.held_by == null)] | length' "$T/calls.json")" \
	"json: held_by null"
assert_eq $N "$(jq '[.[] | select(.worker == 0 or .worker == 1)] | length' "$T/calls.json")" \
	"json: worker is 0 or 1"
assert_eq $N "$(jq '[.[] | select(.age_s >= 0 and .age_s < 15)] | length' "$T/calls.json")" \
	"json: plausible age_s"
assert_eq $N "$(jq '[.[].id] | unique | length' "$T/calls.json")" "json: distinct ids"
assert_eq $N "$(jq '[.[] | select(.b_call_id != null and .b_call_id != .a_call_id)] | length' \
	"$T/calls.json")" "json: B-leg Call-ID set and not the A-leg's"
# The active-call counters agree with the table.
assert_eq $N "$(cli_json workers '[.[].active_calls] | add')" "workers: active_calls total"
assert_eq $N "$(stat_of calls_active)" "stats: calls_active"

# The text table: one line per call, naming its state and callee.
assert_eq $N "$(grep -c 'ANSWERED' "$T/calls.txt")" "text: ANSWERED lines"
assert_eq $N "$(grep 'ANSWERED' "$T/calls.txt" | grep -c "$CALLEE")" "text: lines with the callee"
for id in $(jq -r '.[].id' "$T/calls.json"); do
	grep -q -- "$id" "$T/calls.txt" || fail "text table lacks call id $id"
done
log "ok: every JSON id is in the text table"

# The calls end by themselves (10 s); the table empties.
sipp_wait uac || fail "uac exited $? ($(sipp_stat uac 'FailedCall(C)') failed calls)"
uas_wait uas
assert_sipp_ok uac $N
wait_for 5 calls_empty || fail "show calls not empty after the calls ended: $(cli show calls)"
assert_eq 0 "$(cli show calls | grep -c 'ANSWERED')" "text: no ANSWERED line left"
assert_eq 0 "$(stat_of calls_active)" "stats: calls_active"

# The Call-IDs the table showed are the ones each peer used.
jq -r '.[].a_call_id' "$T/calls.json" | sort >"$T/a_ids"
jq -r '.[].b_call_id' "$T/calls.json" | sort >"$T/b_ids"
assert_eq "$(call_ids "$T/uac.msg" sent)" "$(cat "$T/a_ids")" "a_call_id = the caller's Call-IDs"
assert_eq "$(call_ids "$T/uas.msg" recv)" "$(cat "$T/b_ids")" "b_call_id = the callee's Call-IDs"
log "PASS"
