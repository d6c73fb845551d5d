#!/bin/bash
#
# crash_ringing — nothing is left stuck when the worker that owns ringing
# calls dies (issue 8, item 2).
#
# 1. 200 calls ring (the callee sends 180 and never answers); their worker
#    is killed with SIGKILL.  The restarted process of the same index finds
#    them in the call table and ends each one cleanly from the INVITEs its
#    predecessor recorded: every caller gets 500 with Retry-After in its
#    INVITE's transaction and ACKs it (the ACK sent to the other worker,
#    as after the kernel re-hashed the caller: passed on), every callee gets a CANCEL matching
#    its INVITE (answered 200, then 487, which is ACKed), the call table
#    empties and each call has one true CDR (FAILED, 500, hung up by the
#    system).
# 2. 20 more calls ring; their worker is killed again; this time each
#    callee answers 200 just as the successor's CANCEL arrives: the 2xx,
#    which matches no transaction any more, is ACKed and the call released
#    with BYE; no 2xx is retransmitted more than a few times.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=20
redis_start
b2b_start

empty() { [ "$(cli_json calls 'length')" = 0 ]; }

# sent_most LOG DIR KEY CSEQ-METHOD: the most copies (retransmissions
# included) of one message DIR (sent|recv) with start line KEY (a method or
# a code) and CSeq method, in any one call of a sipp message log.
sent_most() {
	awk -v dir="$2" -v key="$3" -v meth="$4" '
	{ sub(/\r$/, "") }
	/^-----/ { m = 0; next }
	/^[A-Z]+ message sent/ { d = "sent"; m = 1; k = ""; next }
	/^[A-Z]+ message received/ { d = "recv"; m = 1; k = ""; next }
	!m { next }
	k == "" { if (NF > 0) k = ($1 == "SIP/2.0") ? $2 : $1; next }
	tolower($1) == "call-id:" { cid = $2 }
	tolower($1) == "cseq:" && d == dir && k == key && $3 == meth { n[cid]++ }
	END { most = 0; for (c in n) if (n[c] > most) most = n[c]; print most }' "$1"
}

# kill_owner N: SIGKILL the one worker that owns the N ringing calls; wait
# for its successor and its takeover line.  Sets OWNER.
kill_owner() {
	local n=$1 victim
	wait_state 10 "length == $n and all(.[]; .state == \"RINGING\")" "$n calls RINGING"
	assert_eq 1 "$(cli_json calls '[.[].worker] | unique | length')" "one worker owns them all"
	OWNER=$(cli_json calls '.[0].worker')
	victim=$(cli_json workers ".[] | select(.index == $OWNER) | .pid")
	_takeovers=$(grep -c "unanswered ones are being ended" "$T/b2bua.log")
	log "killing worker $OWNER (pid $victim), the owner of the $n ringing calls"
	kill -KILL "$victim"
	_new_takeover() { [ "$(grep -c "unanswered ones are being ended" "$T/b2bua.log")" -gt "$_takeovers" ]; }
	wait_for 3 _new_takeover || fail "worker $OWNER did not take its calls over"
	assert_grep "took over 0 answered calls of the previous worker $OWNER process; $n unanswered ones are being ended .*, 0 could not be taken over" \
		"$T/b2bua.log" "the successor ends the $n unanswered calls"
}

# ------------------------------------------------------------ 1. callees that ring for ever

N=200
uas_start uas uas_ring_forever -m $N
# The callers' ACKs go to the other worker's own port (see uac_ring_crash).
OTHER_PORTS=(-key other0 $((WORKER_PORT_BASE + 1)) -key other1 $WORKER_PORT_BASE)
uac_start uac uac_ring_crash -m $N -r 200 -l $N "${OTHER_PORTS[@]}"
kill_owner $N
sipp_wait uac || fail "uac exited $? (a caller got no 500, or another answer)"
uas_wait uas
assert_sipp_ok uac $N
assert_sipp_ok uas $N
assert_eq "$N" "$(msg_count "$T/uac.msg" recv 500/INVITE)" "every caller got 500"
# Its ACK stopped the retransmissions, wherever the kernel delivered it.
assert_eq 1 "$(sent_most "$T/uac.msg" recv 500 INVITE)" "copies of the 500 a caller got"
assert_eq "$N" "$(msg_count "$T/uas.msg" recv CANCEL)" "every callee got CANCEL"
assert_eq "$N" "$(msg_count "$T/uas.msg" recv ACK)" "every callee's 487 was ACKed"
assert_eq 0 "$(msg_count "$T/uas.msg" recv BYE)" "no BYE for calls never answered"
wait_for 5 empty || fail "calls left in the table: $(cli show calls)"
wait_cdrs $N
assert_eq "$N" "$(jq '[.[] | select(.disposition == "FAILED" and .sip_code == "500" and .hangup_by == "system" and .answer_ms == "0")] | length' "$CDR_JSON")" \
	"$N CDRs FAILED 500, hung up by the system"
assert_eq "$N" "$(jq '[.[].a_call_id] | unique | length' "$CDR_JSON")" "one CDR per call"

# ------------------------------------------------------------ 2. callees that answer late

M=20
uas_start uas2 uas_answer_late -m $M
uac_start uac2 uac_ring_crash -m $M -r 100 -l $M "${OTHER_PORTS[@]}"
kill_owner $M
sipp_wait uac2 || fail "uac2 exited $? (a caller got no 500, or another answer)"
uas_wait uas2
assert_sipp_ok uac2 $M
assert_sipp_ok uas2 $M
assert_eq "$M" "$(msg_count "$T/uas2.msg" recv ACK)" "every late 2xx was ACKed"
assert_eq "$M" "$(msg_count "$T/uas2.msg" recv BYE)" "every late 2xx was released with BYE"
max_sent=$(sent_most "$T/uas2.msg" sent 200 INVITE)
[ "$max_sent" -ge 1 ] && [ "$max_sent" -le 3 ] ||
	fail "a callee sent its 2xx $max_sent times (1 to 3 expected)"
log "ok: no callee sent its 2xx more than $max_sent times"
wait_for 5 empty || fail "calls left in the table: $(cli show calls)"
wait_cdrs $((N + M))
assert_eq "$((N + M))" "$(jq '[.[] | select(.disposition == "FAILED" and .sip_code == "500" and .hangup_by == "system")] | length' "$CDR_JSON")" \
	"$((N + M)) CDRs FAILED 500, hung up by the system"
log "ok: crash_ringing"
