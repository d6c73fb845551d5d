#!/bin/bash
#
# call_kill — an operator ends a call with `b2bua-cli call kill ID`.
#
# The CLI finds the call in the shared table, asks the worker that owns it
# to end it, and answers "call ID killed" only once the call has left the
# table.  What the parties see depends on how far the call got:
#   1. answered: both the caller and the callee get a BYE from us (each in
#      its own dialog) and answer 200; one CDR KILLED, hung up by the
#      system, answered and billed;
#   2. ringing: the callee gets a CANCEL in its INVITE's transaction (it
#      answers 200 and 487, we ACK), the caller - who never cancelled - gets
#      a final 487 and ACKs it; one CDR KILLED, never answered;
#   3. an id that is no call (or no longer one): exit 1, "no such call".

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=15
redis_start
b2b_start


# kill_call ID: `call kill ID` must exit 0 and say so; its output in $KILL_OUT.
kill_call() {
	local rc
	KILL_OUT=$(cli call kill "$1" 2>"$T/kill.err")
	rc=$?
	[ "$rc" -eq 0 ] || fail "call kill $1 exited $rc: $KILL_OUT $(cat "$T/kill.err")"
	assert_eq "call $1 killed" "$KILL_OUT" "call kill $1: its answer"
}

# kill_refused ID: `call kill ID` must exit 1 with "no such call ID" on stderr.
kill_refused() {
	local out rc
	out=$(cli call kill "$1" 2>"$T/kill.err")
	rc=$?
	assert_eq 1 "$rc" "call kill $1: exit status"
	assert_eq "" "$out" "call kill $1: nothing on stdout"
	assert_grep "no such call $1\$" "$T/kill.err" "call kill $1: 'no such call' on stderr"
}

# --- 1. an answered call
uas_start uas1 uas_basic -m 1
uac_start uac1 uac_recv_bye -m 1
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "call 1 ANSWERED"
id1=$(call_field 'true' id)
w1=$(call_field 'true' worker)
a1=$(call_field 'true' a_call_id)
assert_match "^$(node_id)-w$w1-[0-9a-f]+-[0-9]+\$" "$id1" "call 1: its id"
# Let it talk a little, so that its billable time is visibly more than 0.
sleep 0.5
kill_call "$id1"
# "killed" means gone: the table is empty at once, not eventually.
assert_eq 0 "$(cli_json calls 'length')" "show calls right after the kill: no call"
sipp_wait uac1 || fail "uac1 exited $? (the caller got no BYE?)"
uas_wait uas1
assert_sipp_ok uac1 1
assert_sipp_ok uas1 1
assert_seq "$T/uac1.msg" "call 1 caller" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 200/INVITE" "sent ACK" \
	"recv BYE" "sent 200/BYE"
assert_seq "$T/uas1.msg" "call 1 callee" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK" \
	"recv BYE" "sent 200/BYE"
assert_eq "$a1" "$(call_ids "$T/uac1.msg" sent)" "call 1: show calls had the caller's Call-ID"
# Each BYE is in its party's own dialog: the caller's Call-ID and tag, the callee's.
assert_eq "$(call_ids "$T/uac1.msg" sent)" "$(msg_list "$T/uac1.msg" |
	awk '$1 == "recv" && $2 == "BYE" { print $4 }')" "call 1: the caller's BYE in its dialog"
assert_grep 'tag=[0-9]+SIPpTag001' <(msg_header "$T/uac1.msg" recv BYE To) \
	"call 1: the caller's BYE carries the caller's tag in To"
assert_eq "$(call_ids "$T/uas1.msg" recv | head -n1)" "$(msg_list "$T/uas1.msg" |
	awk '$1 == "recv" && $2 == "BYE" { print $4 }')" "call 1: the callee's BYE in its dialog"
assert_grep 'tag=[0-9]+SIPpTag011' <(msg_header "$T/uas1.msg" recv BYE To) \
	"call 1: the callee's BYE carries the callee's tag in To"
assert_no_leak "$T/uac1.msg" "$T/uas1.msg"
assert_grep "call $id1: killed by an operator" "$T/b2bua.log" "call 1: the worker logged the kill"
assert_grep "call $id1: killed through the CLI \\(worker $w1\\)" "$T/b2bua.log" \
	"call 1: the CLI logged it"
wait_cdrs 1
assert_cdr_fields 0
assert_cdr_id 0 "$id1" "$w1"
# One id everywhere: what show calls gave is the log's and `cdr tail`'s.
assert_eq "$id1" "$(cli cdr tail 1 --json | jq -r '.[0].id')" "call 1: cdr tail shows the same id"
assert_cdr 0 "a_call_id=$(call_ids "$T/uac1.msg" sent)" "b_call_id=$(call_ids "$T/uas1.msg" recv)" \
	"caller=$(from_uri "$T/uac1.msg")" "callee=sip:1000@$ADDR:$SIP_PORT" \
	"answered_by=sip:1000@$ADDR:$UAS_PORT;transport=udp" "forwarded_to=" \
	"disposition=KILLED" "sip_code=200" "hangup_by=system" "host=$(node_id)" "worker=$w1"
assert_cdr_times 0
[ "$(cdr_get 0 answer_ms)" -gt 0 ] || fail "CDR[0].answer_ms is 0 for an answered call"
assert_between 400 3000 "$(cdr_get 0 billable_ms)" "CDR[0].billable_ms (~500 ms of talk)"
# Killed once, it is no call any more.
kill_refused "$id1"
rcli DEL "$CDR_STREAM" >/dev/null

# --- 2. a ringing call
uas_start uas2 uas_ring_forever -m 1
uac_start uac2 kill_uac_ringing -m 1
wait_state 5 'length == 1 and .[0].state == "RINGING"' "call 2 RINGING"
id2=$(call_field 'true' id)
w2=$(call_field 'true' worker)
assert_match "^$(node_id)-w$w2-[0-9a-f]+-[0-9]+\$" "$id2" "call 2: its id"
[ "$id2" != "$id1" ] || fail "call 2 has call 1's id $id1"
kill_call "$id2"
assert_eq 0 "$(cli_json calls 'length')" "show calls right after the kill: no call"
sipp_wait uac2 || fail "uac2 exited $? (the caller got no 487?)"
uas_wait uas2
assert_sipp_ok uac2 1
assert_sipp_ok uas2 1
assert_seq "$T/uac2.msg" "call 2 caller" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 487/INVITE" "sent ACK"
assert_seq "$T/uas2.msg" "call 2 callee" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "recv CANCEL" "sent 200/CANCEL" \
	"sent 487/INVITE" "recv ACK"
assert_eq "$(msg_header "$T/uas2.msg" recv INVITE Via | grep -o 'branch=[^;]*')" \
	"$(msg_header "$T/uas2.msg" recv CANCEL Via | grep -o 'branch=[^;]*')" \
	"call 2: the callee's CANCEL is in its INVITE's transaction"
assert_eq "$(msg_header "$T/uas2.msg" recv INVITE Via | grep -o 'branch=[^;]*')" \
	"$(msg_header "$T/uas2.msg" recv ACK Via | grep -o 'branch=[^;]*')" \
	"call 2: our ACK of the 487 is in the callee's INVITE's transaction"
assert_no_leak "$T/uac2.msg" "$T/uas2.msg"
assert_grep "call $id2: killed by an operator" "$T/b2bua.log" "call 2: the worker logged the kill"
wait_cdrs 1
assert_cdr_fields 0
assert_cdr_id 0 "$id2" "$w2"
assert_cdr 0 "a_call_id=$(call_ids "$T/uac2.msg" sent)" "b_call_id=$(call_ids "$T/uas2.msg" recv)" \
	"caller=$(from_uri "$T/uac2.msg")" "callee=sip:1000@$ADDR:$SIP_PORT" \
	"answered_by=" "forwarded_to=" "disposition=KILLED" "sip_code=487" \
	"hangup_by=system" "host=$(node_id)" "answer_ms=0" "billable_ms=0" "worker=$w2"
assert_cdr_times 0
[ "$(cdr_get 0 ring_ms)" != 0 ] || fail "CDR ring_ms is 0 though the callee rang"

# --- 3. no such call
kill_refused "$(node_id)-w0-1-999999"
bad=$(cli call kill abc 2>&1)
assert_eq 2 "$?" "call kill abc: a usage error"
assert_match "bad call ID 'abc'" "$(printf '%s\n' "$bad" | head -n1)" "call kill abc: says why"
sleep 0.3
assert_eq 1 "$(cdr_len)" "no CDR from refused kills"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
