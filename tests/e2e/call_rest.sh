#!/bin/bash
#
# call_rest — calls at rest (call_rest_after, worker/b2b_rest.c): an
# established call that is quiet frees its two SIP dialogs and rebuilds them
# from its call-table slot when a party speaks again, or when we must send
# (here: a kill).
#
# call_rest_after = 1, one worker.  Call 1 (rest_caller -> rest_callee,
# whose answer has a Record-Route naming itself):
#   1. after the ACK both parties are quiet: the call comes to rest
#      (show workers: calls_at_rest 1) and show calls still lists it;
#   2. the caller puts the callee on hold with a re-INVITE: the call wakes
#      (calls_woken 1) and the re-INVITE reaches the callee with its SDP
#      unchanged, in the callee's dialog (its Call-ID and tags, the B-leg's
#      next CSeq), with the route set (Route: the callee's Record-Route);
#      the answer and the ACK come back; the call shows HELD;
#   3. quiet again: at rest again;
#   4. the callee hangs up: its BYE wakes the call from the callee's side
#      (calls_woken 2) and reaches the caller in the caller's dialog; one
#      CDR, ANSWERED, hung up by the callee; nothing at rest any more.
# Call 2 (uac_recv_bye -> uas_basic): at rest, then `call kill`: the call
# wakes, and both parties get a BYE in their own dialog.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=30
CFG_WORKERS=1
CFG_EXTRA="call_rest_after = 1;"
redis_start
b2b_start

# rest_counter FIELD: a counter of the one worker (show workers --json).
rest_counter() { worker_counter 0 "$1" || fail "show workers has no $1"; }
# at_rest N: the worker has N calls at rest.
at_rest() { [ "$(rest_counter calls_at_rest)" = "$1" ]; }
# woken N: the worker has woken N calls so far.
woken() { [ "$(rest_counter calls_woken)" = "$1" ]; }

# The parties' quiet spells (ms): well over call_rest_after and the daemon's
# one-second check.  The test itself waits on what the worker reports.
QUIET=4000

# --- call 1: rest, wake for the caller's re-INVITE, rest, wake for the callee's BYE
uas_start uas rest_callee -m 1 -d "$QUIET"
uac_start uac rest_caller -m 1 -d "$QUIET"
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "call 1 ANSWERED"
cli_json calls '.[0]' >"$T/call.json"
wait_for 4 at_rest 1 || fail "call 1 did not come to rest: $(cli show workers --json | tr -d '\n')"
log "ok: call 1 at rest"
assert_eq 0 "$(rest_counter calls_woken)" "no call woken yet"
assert_eq 1 "$(cli_json calls 'length')" "show calls lists the call at rest"
wait_for 6 woken 1 || fail "the caller's re-INVITE did not wake call 1"
wait_state 5 'length == 1 and .[0].state == "HELD" and .[0].held_by == "caller"' \
	"call 1 HELD by the caller after waking"
wait_for 4 at_rest 1 || fail "call 1 did not come to rest again after the hold"
log "ok: call 1 at rest again"
sipp_wait uac || fail "uac exited $?"
uas_wait uas
assert_sipp_ok uac 1
assert_sipp_ok uas 1
assert_eq 2 "$(rest_counter calls_woken)" "the callee's BYE woke call 1 again"
wait_for 5 at_rest 0 || fail "a call still at rest after call 1 ended"

seq_of "$T/uac.msg" | grep -Ev '^(sent|recv) 1[0-9][0-9]/INVITE$' >"$T/uac.seq"
seq_of "$T/uas.msg" | grep -Ev '^(sent|recv) 1[0-9][0-9]/INVITE$' >"$T/uas.seq"
assert_eq "$(printf '%s\n' "sent INVITE" "recv 200/INVITE" "sent ACK" "sent INVITE" \
	"recv 200/INVITE" "sent ACK" "recv BYE" "sent 200/BYE")" "$(cat "$T/uac.seq")" \
	"caller's messages (provisionals aside)"
assert_eq "$(printf '%s\n' "recv INVITE" "sent 200/INVITE" "recv ACK" "recv INVITE" \
	"sent 200/INVITE" "recv ACK" "sent BYE" "recv 200/BYE")" "$(cat "$T/uas.seq")" \
	"callee's messages (provisionals aside)"
assert_eq "$(msg_body "$T/uac.msg" sent INVITE 2)" "$(msg_body "$T/uas.msg" recv INVITE 2)" \
	"the hold re-INVITE reached the callee unchanged"
assert_grep '^a=x-answer:hold$' <(msg_body "$T/uac.msg" recv 200/INVITE 2) \
	"the callee's answer reached the caller"
# The callee's dialog, rebuilt from the slot: same Call-ID, both tags, the
# next CSeq after the INVITE's, and the route set of the callee's answer.
b_cid=$(call_ids "$T/uas.msg" recv)
assert_eq 1 "$(printf '%s\n' "$b_cid" | wc -l)" "the callee saw one Call-ID"
inv_cseq=$(msg_header "$T/uas.msg" recv INVITE CSeq | awk '!seen[$0]++' | sed -n 1p)
re_cseq=$(msg_header "$T/uas.msg" recv INVITE CSeq | awk '!seen[$0]++' | sed -n 2p)
assert_eq "$(( ${inv_cseq%% *} + 1 )) INVITE" "$re_cseq" "the re-INVITE has the B-leg's next CSeq"
assert_grep 'tag=[0-9]+SIPpTag011' <(msg_header "$T/uas.msg" recv INVITE To | sed -n 2p) \
	"the re-INVITE carries the callee's tag"
assert_grep "^<sip:$ADDR:$UAS_PORT;lr;x-rest=callee>\$" \
	<(msg_header "$T/uas.msg" recv INVITE Route) "the re-INVITE carries the callee's route set"
assert_grep "^<sip:$ADDR:$UAS_PORT;lr;x-rest=callee>\$" <(msg_header "$T/uas.msg" recv ACK Route) \
	"so does its ACK"
# The caller's dialog: its Call-ID and tag on the BYE the callee's woke.
assert_eq "$(call_ids "$T/uac.msg" sent)" "$(msg_list "$T/uac.msg" |
	awk '$1 == "recv" && $2 == "BYE" { print $4 }')" "the caller's BYE in its dialog"
assert_grep 'tag=[0-9]+SIPpTag001' <(msg_header "$T/uac.msg" recv BYE To) \
	"the caller's BYE carries the caller's tag"
assert_no_leak "$T/uac.msg" "$T/uas.msg"

wait_cdrs 1
assert_cdr 0 "a_call_id=$(call_ids "$T/uac.msg" sent)" "b_call_id=$b_cid" \
	"disposition=ANSWERED" "sip_code=200" "hangup_by=callee"
assert_cdr_id 0 "$(jq -r .id "$T/call.json")" 0

# --- call 2: at rest, then killed by an operator
uas_start uas2 uas_basic -m 1
uac_start uac2 uac_recv_bye -m 1
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "call 2 ANSWERED"
id2=$(call_field 'true' id)
wait_for 4 at_rest 1 || fail "call 2 did not come to rest"
out=$(cli call kill "$id2") || fail "call kill $id2 failed: $out"
assert_eq "call $id2 killed" "$out" "call kill of a call at rest"
sipp_wait uac2 || fail "uac2 exited $? (the caller got no BYE?)"
uas_wait uas2
assert_sipp_ok uac2 1
assert_sipp_ok uas2 1
assert_eq 3 "$(rest_counter calls_woken)" "the kill woke call 2"
assert_eq 0 "$(rest_counter calls_at_rest)" "nothing at rest after call 2"
assert_eq "$(call_ids "$T/uac2.msg" sent)" "$(msg_list "$T/uac2.msg" |
	awk '$1 == "recv" && $2 == "BYE" { print $4 }')" "call 2: the caller's BYE in its dialog"
assert_eq "$(call_ids "$T/uas2.msg" recv | head -n1)" "$(msg_list "$T/uas2.msg" |
	awk '$1 == "recv" && $2 == "BYE" { print $4 }')" "call 2: the callee's BYE in its dialog"
assert_grep 'tag=[0-9]+SIPpTag011' <(msg_header "$T/uas2.msg" recv BYE To) \
	"call 2: the callee's BYE carries the callee's tag"
wait_cdrs 2
i=$(cdr_index ".id == \"$id2\"")
assert_cdr "$i" "disposition=KILLED" "sip_code=200" "hangup_by=system"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
