#!/bin/bash
#
# flow_12_call_waiting — call flow 12, call waiting.
#
# Local user alice is registered by one sipp UAS process (flow_12_alice)
# that plays both of her calls; bob and carol call her from a trusted
# source (flow_11_caller, which answers re-INVITEs and waits for a BYE).
#   1. bob calls alice; she answers: one call, ANSWERED.
#   2. carol calls alice: we do not refuse her as busy, the INVITE reaches
#      alice, who rings (180 relayed to carol), puts bob on hold (her
#      re-INVITE a=sendonly relayed to bob, 200, ACK), then answers carol.
#      While alice talks to carol, `show calls` lists both of her calls:
#      bob's HELD (held_by callee), carol's ANSWERED.
#   3. alice hangs up carol (BYE relayed, 200) and resumes bob (re-INVITE
#      a=sendrecv relayed): one call, ANSWERED again; then she hangs up.
# Both legs of both calls see exactly their own messages, in order; each
# call ends with its own CDR.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=25
ALICE_PORT=$UAS_PORT
redis_start
registrar_config
CFG_EXTRA="$CFG_EXTRA
trusted = ( \"$ADDR\" );"
b2b_start
wait_for 5 redis_up || fail "the workers did not connect to Redis"

add_user alice alice-pw
add_user bob bob-pw
add_user carol carol-pw
register_as reg_alice alice alice-pw $ALICE_PORT

uas_start alice flow_12_alice -m 2
uac_start bob flow_11_caller -m 1 -s alice -key caller bob
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "1: bob's call ANSWERED"
sleep 0.5
uac_start carol flow_11_caller -m 1 -s alice -key caller carol

BOB='.caller | startswith("sip:bob@")'
CAROL='.caller | startswith("sip:carol@")'
wait_state 5 "length == 2 and
	([.[] | select($BOB)][0] | .state == \"HELD\" and .held_by == \"callee\") and
	([.[] | select($CAROL)][0] | .state == \"ANSWERED\" and .held_by == null)" \
	"2: both of alice's calls, bob's HELD by alice, carol's ANSWERED"
cli_json calls '.' >"$T/calls2.json"
assert_eq 2 "$(jq "[.[] | select(.callee == \"sip:alice@$ADDR:$SIP_PORT\")] | length" \
	"$T/calls2.json")" "2: both calls are to alice"
cli show calls >"$T/calls2.txt" || fail "b2bua-cli show calls failed"
assert_grep "sip:bob@.*HELD\(by callee\)" "$T/calls2.txt" "2: text: bob's call HELD(by callee)"
assert_grep "sip:carol@.*ANSWERED" "$T/calls2.txt" "2: text: carol's call ANSWERED"

wait_state 5 "length == 1 and (.[0] | ($BOB) and .state == \"ANSWERED\" and .held_by == null)" \
	"3: carol's call over, bob's resumed (ANSWERED)"

sipp_wait carol || fail "carol exited $?"
sipp_wait bob || fail "bob exited $?"
uas_wait alice
assert_sipp_ok bob 1
assert_sipp_ok carol 1
assert_sipp_ok alice 2

# --- every leg's messages
assert_seq "$T/bob.msg" "bob (A-leg 1)" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 200/INVITE" "sent ACK" \
	"recv INVITE" "sent 200/INVITE" "recv ACK" "recv INVITE" "sent 200/INVITE" "recv ACK" \
	"recv BYE" "sent 200/BYE"
assert_seq "$T/carol.msg" "carol (A-leg 2)" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 200/INVITE" "sent ACK" \
	"recv BYE" "sent 200/BYE"
# alice's two dialogs, interleaved as they happened: B = bob's, C = carol's.
B_CID=$(msg_list "$T/alice.msg" | awk '$1 == "recv" && $2 == "INVITE" { print $4; exit }')
msg_list "$T/alice.msg" | awk -v b="$B_CID" '
	$1 == "recv" && $2 == "100" { next }
	{ k = ($2 ~ /^[0-9]+$/) ? $2 "/" $3 : $2; print ($4 == b ? "B" : "C"), $1, k }' \
	>"$T/alice.seq"
assert_eq "$(printf '%s\n' \
	"B recv INVITE" "B sent 100/INVITE" "B sent 180/INVITE" "B sent 200/INVITE" "B recv ACK" \
	"C recv INVITE" "C sent 100/INVITE" "C sent 180/INVITE" \
	"B sent INVITE" "B recv 200/INVITE" "B sent ACK" \
	"C sent 200/INVITE" "C recv ACK" \
	"C sent BYE" "C recv 200/BYE" \
	"B sent INVITE" "B recv 200/INVITE" "B sent ACK" \
	"B sent BYE" "B recv 200/BYE")" "$(cat "$T/alice.seq")" \
	"alice's two dialogs, in order (her 100s for re-INVITEs aside)"
assert_grep 'a=sendonly' <(msg_body "$T/bob.msg" recv INVITE 1) "bob's first re-INVITE holds"
assert_grep 'a=sendrecv' <(msg_body "$T/bob.msg" recv INVITE 2) "bob's second re-INVITE resumes"
assert_eq "$(msg_body "$T/alice.msg" sent INVITE 1)" "$(msg_body "$T/bob.msg" recv INVITE 1)" \
	"the hold offer reached bob unchanged"
assert_eq "$(msg_body "$T/alice.msg" sent INVITE 2)" "$(msg_body "$T/bob.msg" recv INVITE 2)" \
	"the resume offer reached bob unchanged"
assert_no_leak "$T/bob.msg" "$T/alice.msg"
assert_no_leak "$T/carol.msg" "$T/alice.msg"

# --- one CDR per call
wait_for 5 calls_empty || fail "show calls not empty after the calls: $(cli show calls)"
wait_cdrs 2
i_bob=$(cdr_index ".a_call_id == \"$(call_ids "$T/bob.msg" sent)\"")
i_carol=$(cdr_index ".a_call_id == \"$(call_ids "$T/carol.msg" sent)\"")
C_CID=$(call_ids "$T/alice.msg" recv | grep -vx "$B_CID")
for who in bob carol; do
	eval "i=\$i_$who"
	assert_cdr_fields "$i"
	assert_cdr "$i" "caller=$(from_uri "$T/$who.msg")" "callee=sip:alice@$ADDR:$SIP_PORT" \
		"answered_by=sip:alice@$ADDR:$ALICE_PORT" "forwarded_to=" \
		"disposition=ANSWERED" "sip_code=200" "hangup_by=callee" "host=$(node_id)"
	assert_cdr_times "$i"
done
assert_cdr "$i_bob" "b_call_id=$B_CID"
assert_cdr "$i_carol" "b_call_id=$C_CID"
assert_between 1300 2500 "$(cdr_get "$i_carol" billable_ms)" "carol's CDR: ~1.5 s of talk"
[ "$(cdr_get "$i_bob" billable_ms)" -gt "$(cdr_get "$i_carol" billable_ms)" ] ||
	fail "bob's call (held during carol's) must bill more than carol's"
log "ok: bob's call billed $(cdr_get "$i_bob" billable_ms) ms (hold included)"
[ "$(cdr_get "$i_bob" id)" != "$(cdr_get "$i_carol" id)" ] || fail "the two CDRs share an id"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
