#!/bin/bash
#
# overload — overload control and the record of refused attempts, with one
# worker and thresholds low enough that a handful of calls reach them
# (overload_setup_calls = 1: one call not yet answered makes the worker
# shed; call_capacity = 2).
#   1. overload: a call to "1000" is answered and stays up 3 s; a call to
#      "2000" rings 10 s (the callee sends its 180 late), so the worker has a
#      call in setup.  Meanwhile 10 new INVITEs each get a stateless 503
#      with "Retry-After: 7" and a To tag of the overload gate, reach no
#      callee, and are counted (overload_refused 10) without a CDR; the
#      answered call's BYE, sent while the worker still sheds, is answered
#      200; then the ringing call is answered and ends normally;
#   2. capacity: two answered calls fill call_capacity; a third INVITE gets
#      Sofia's 503 (Retry-After 5, not the gate's) and leaves a CDR with
#      disposition REFUSED, cause "capacity", sip_code 503;
#   3. every CDR: one per call, none for the shed INVITEs.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

# shellcheck disable=SC2034  # read by lib.sh
SIPP_TIMEOUT=20
SLOW_PORT=$((UAS_PORT + 1))
FLOOD=10
CFG_WORKERS=1
CFG_CALL_CAPACITY=2
CFG_ROUTES="{ prefix = \"1\"; target = \"sip:$ADDR:$UAS_PORT;transport=udp\"; },
	{ prefix = \"2\"; target = \"sip:$ADDR:$SLOW_PORT;transport=udp\"; }"
CFG_EXTRA="overload_setup_calls = 1;
overload_retry_after = 7;"
redis_start
b2b_start

answered_n() { [ "$(cli_json calls "[.[] | select(.state == \"ANSWERED\")] | length")" = "$1" ]; }
in_setup() { [ "$(cli_json calls "[.[] | select(.state != \"ANSWERED\")] | length")" = 1 ]; }

# ---------------------------------------------------------------- 1. overload
uas_start fast uas_basic -m 1
uac_start held uac_basic -m 1 -d 3000
wait_for 5 answered_n 1 || fail "the held call was not answered: $(cli show calls)"
log "ok: one call answered"

uas_start slow flow_10_uas_slow -m 1 -d 10000 -p "$SLOW_PORT"
uac_start ringing uac_basic -m 1 -s 2000
wait_for 5 in_setup || fail "no call in setup: $(cli show calls)"
log "ok: one call in setup: the worker sheds"

uac_run flood limits_uac -s 1000 -m "$FLOOD" -r 20
assert_count "$T/flood.msg" recv 503 "$FLOOD"
assert_count "$T/flood.msg" recv 100 0
assert_count "$T/flood.msg" sent ACK "$FLOOD"
assert_eq "$FLOOD" "$(msg_header "$T/flood.msg" recv 503 Retry-After | grep -c '^7')" \
	"503s with Retry-After: 7"
assert_eq "$FLOOD" "$(msg_header "$T/flood.msg" recv 503 To | grep -c ';tag=ovl')" \
	"503s with the gate's To tag"
assert_eq "$FLOOD" "$(stat_of overload_refused)" "show stats: overload_refused"
assert_eq 0 "$(stat_of 'final_codes["503"]')" "show stats: shed INVITEs are no calls"
assert_grep "overload: [0-9]+ new INVITEs refused with 503" "$T/b2bua.log" "the log says so"

# The answered call hangs up while the other still rings: its BYE is served.
sipp_wait held || fail "the held call's caller exited $? ($(sipp_stat held 'FailedCall(C)') failed)"
in_setup || fail "the ringing call was answered before the BYE: the test proves nothing"
assert_count "$T/held.msg" recv 200/BYE 1
assert_sipp_ok held 1
log "ok: the BYE of an answered call was answered while the worker shed new INVITEs"
uas_wait fast
assert_count "$T/fast.msg" recv INVITE 1   # not one of the shed INVITEs reached a callee

sipp_wait ringing || fail "the ringing call's caller exited $?"
uas_wait slow
assert_sipp_ok ringing 1
wait_for 5 calls_empty || fail "calls left: $(cli show calls)"

# ---------------------------------------------------------------- 2. capacity
uas_start fast2 uas_basic -m 2
uac_start full uac_basic -m 2 -r 10 -d 3000
wait_for 5 answered_n 2 || fail "two calls not answered: $(cli show calls)"
uac_run refused limits_uac -s 1000 -m 1
assert_count "$T/refused.msg" recv 503 1
assert_eq 5 "$(msg_header "$T/refused.msg" recv 503 Retry-After | tr -d '\r')" \
	"capacity 503: Retry-After"
refused_call_id=$(call_ids "$T/refused.msg" sent)
sipp_wait full || fail "the calls filling the table failed"
uas_wait fast2
assert_eq "$FLOOD" "$(stat_of overload_refused)" "the capacity 503 is not counted as shed"

# ---------------------------------------------------------------- 3. CDRs
# held, ringing, the two calls filling the table, the refused attempt.
wait_cdrs 5
i=$(cdr_index ".disposition == \"REFUSED\"")
assert_cdr_fields "$i"
assert_cdr "$i" "cause=capacity" "sip_code=503" "hangup_by=system" \
	"a_call_id=$refused_call_id" "answer_ms=0" "billable_ms=0" "host=$(node_id)"
assert_eq 4 "$(jq '[.[] | select(.disposition == "ANSWERED" and .cause == "")] | length' \
	"$CDR_JSON")" "answered calls' CDRs, no cause"
log "ok: overload"
