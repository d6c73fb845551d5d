#!/bin/bash
#
# crash_ringing — nothing is left stuck when the worker that owns ringing
# calls dies (issue 8, item 2).
#
# 1. 200 calls ring (the callee sends 180 and never answers); their worker
#    is killed with SIGKILL.  The restarted process of the same index finds
#    them in the call table and ends each one cleanly from the INVITEs its
#    predecessor recorded: every caller gets 500 with Retry-After in its
#    INVITE's transaction and ACKs it, every callee gets a CANCEL matching
#    its INVITE (answered 200, then 487, which is ACKed), the call table
#    empties and each call has one true CDR (FAILED, 500, hung up by the
#    system).
# 2. 20 more calls ring; their worker is killed again; this time each
#    callee answers 200 just as the successor's CANCEL arrives: the 2xx,
#    which matches no transaction any more, is ACKed and the call released
#    with BYE; no 2xx is retransmitted more than a few times.  Each caller's
#    CANCEL, crossing the successor's 500, and its ACK reach the other
#    worker (sent there by the test): the CANCEL is handed over and answered
#    200, never 481, the ACK passed on, so the calls leave the table at once.
# 3. 10 callers cancel; their worker dies before the callees end their
#    INVITEs: each caller gets 487 from the successor, each callee a CANCEL
#    again (its 487 ACKed), and the CDRs say CANCELLED by the caller.

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

# caller_requests LOG: for each call of a sipp caller, tab-separated: its
# INVITE's Request-URI, Via value, From and To, its Call-ID, and the To of
# the 500 it got.
caller_requests() {
	awk '
	{ sub(/\r$/, "") }
	/^-----/ { m = 0; next }
	/^[A-Z]+ message (sent|received)/ { m = 1; k = ""; next }
	!m { next }
	k == "" { if (NF > 0) { k = ($1 == "SIP/2.0") ? $2 : $1; ruri = $2 } next }
	{ h = tolower($1); v = $0; sub(/^[^:]*: */, "", v) }
	h == "via:" { via = v }
	h == "from:" { from = v }
	h == "to:" { to = v }
	h == "call-id:" && k == "INVITE" { inv[v] = ruri "\t" via "\t" from "\t" to "\t" v }
	h == "call-id:" && k == "500" { got[v] = to }
	END { for (c in got) if (c in inv) print inv[c] "\t" got[c] }' "$1"
}

_handed_over() {
	[ "$(grep -c "its CANCEL reached worker $((1 - OWNER)), not its owner $OWNER: handed over" \
		"$T/b2bua.log")" = "$M" ]
}

# kill_owner N [STATE]: SIGKILL the one worker that owns the N calls once
# they are all in STATE (RINGING); wait for its successor and its takeover
# line.  Sets OWNER.
kill_owner() {
	local n=$1 state=${2:-RINGING} victim
	wait_state 10 "length == $n and all(.[]; .state == \"$state\")" "$n calls $state"
	assert_eq 1 "$(cli_json calls '[.[].worker] | unique | length')" "one worker owns them all"
	OWNER=$(cli_json calls '.[0].worker')
	victim=$(cli_json workers ".[] | select(.index == $OWNER) | .pid")
	_takeovers=$(grep -c "unanswered ones are being ended" "$T/b2bua.log")
	log "killing worker $OWNER (pid $victim), the owner of the $n calls"
	kill -KILL "$victim"
	_new_takeover() { [ "$(grep -c "unanswered ones are being ended" "$T/b2bua.log")" -gt "$_takeovers" ]; }
	wait_for 3 _new_takeover || fail "worker $OWNER did not take its calls over"
	assert_grep "took over 0 answered calls of the previous worker $OWNER process; $n unanswered ones are being ended .*, 0 could not be taken over" \
		"$T/b2bua.log" "the successor ends the $n unanswered calls"
}

# ------------------------------------------------------------ 1. callees that ring for ever

N=200
uas_start uas uas_ring_crash -m $N
uac_start uac uac_ring_crash -m $N -r 100 -l $N
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
uac_start uac2 uac_ring_crash_silent -m $M -r 100 -l $M
kill_owner $M
# The callers end at their 500 (sipp writes its trace at exit).
sipp_wait uac2 || fail "uac2 exited $? (a caller got no 500, or another answer)"
assert_sipp_ok uac2 $M
# Each caller's CANCEL (crossing the 500) and ACK reach the other worker, as
# they may after the kernel re-hashed the callers: the CANCEL is handed over
# through the table (its 200 goes to port 9, unheard), the ACK is passed on
# to the owner by its To tag.
caller_requests "$T/uac2.msg" >"$T/requests"
other_port=$((WORKER_PORT_BASE + 1 - OWNER))
while IFS=$'\t' read -r ruri via from to cid to500; do
	printf 'CANCEL %s SIP/2.0\r\nVia: SIP/2.0/UDP %s:9;branch=%s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n' \
		"$ruri" "$ADDR" "${via##*branch=}" "$from" "$to" "$cid" >"$T/cancel.txt"
	cat "$T/cancel.txt" >"/dev/udp/$ADDR/$other_port"
	printf 'ACK %s SIP/2.0\r\nVia: %s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n' \
		"$ruri" "$via" "$from" "$to500" "$cid" >"$T/ack.txt"
	cat "$T/ack.txt" >"/dev/udp/$ADDR/$other_port"
done <"$T/requests"
assert_eq "$M" "$(wc -l <"$T/requests")" "CANCELs and ACKs sent to worker $((1 - OWNER))"
uas_wait uas2
assert_sipp_ok uas2 $M
wait_for 3 _handed_over || fail "CANCELs handed over by worker $((1 - OWNER)): $(grep -c "its CANCEL reached" "$T/b2bua.log")"
log "ok: $M CANCELs reached worker $((1 - OWNER)) and were handed over (200)"
assert_eq "$M" "$(msg_count "$T/uas2.msg" recv ACK)" "every late 2xx was ACKed"
assert_eq "$M" "$(msg_count "$T/uas2.msg" recv BYE)" "every late 2xx was released with BYE"
max_sent=$(sent_most "$T/uas2.msg" sent 200 INVITE)
[ "$max_sent" -ge 1 ] && [ "$max_sent" -le 3 ] ||
	fail "a callee sent its 2xx $max_sent times (1 to 3 expected)"
log "ok: no callee sent its 2xx more than $max_sent times"
# An ending call leaves the table at its caller's ACK (or Timer H, 32 s).
wait_for 3 empty || fail "calls left in the table: $(cli show calls)"
wait_cdrs $((N + M))
assert_eq "$((N + M))" "$(jq '[.[] | select(.disposition == "FAILED" and .sip_code == "500" and .hangup_by == "system")] | length' "$CDR_JSON")" \
	"$((N + M)) CDRs FAILED 500, hung up by the system"

# ------------------------------------------------------------ 3. callers that had cancelled

# The callee answers the first CANCEL 200 but ends its INVITE only after a
# second one: the worker dies while the calls are being cancelled.
K=10
uas_start uas3 uas_cancel_twice -m $K
uac_start uac3 uac_cancel -m $K -r 100 -l $K
kill_owner $K ENDING
sipp_wait uac3 || fail "uac3 exited $? (a caller that cancelled got no 487)"
uas_wait uas3
assert_sipp_ok uac3 $K
assert_sipp_ok uas3 $K
assert_eq "$K" "$(msg_count "$T/uac3.msg" recv 487/INVITE)" "every caller that cancelled got 487"
assert_eq "$K" "$(msg_count "$T/uas3.msg" recv ACK)" "every callee's 487 was ACKed"
wait_for 5 empty || fail "calls left in the table: $(cli show calls)"
wait_cdrs $((N + M + K))
assert_eq "$K" "$(jq '[.[] | select(.disposition == "CANCELLED" and .sip_code == "487" and .hangup_by == "caller")] | length' "$CDR_JSON")" \
	"$K CDRs CANCELLED 487, hung up by the caller"
log "ok: crash_ringing"
