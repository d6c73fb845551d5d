#!/bin/bash
#
# crash_ringing — nothing is left stuck when the worker that owns ringing
# calls dies (issue 8, item 2).
#
# 1. 200 calls ring (the callee sends 180 and never answers); the workers
#    that own them (new calls are spread over the workers by a hash of their
#    Call-ID, worker/dgram.c) are killed with SIGKILL at once.  The
#    restarted process of each index finds
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
#    worker (sent there by the test): both are handed over to the owner,
#    which answers the CANCEL 200, never 481, and takes the ACK, so the
#    calls leave the table at once.
# 3. 10 callers cancel; their worker dies before the callees end their
#    INVITEs: each caller gets 487 from the successor, each callee a CANCEL
#    again (its 487 ACKed), and the CDRs say CANCELLED by the caller.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=20
redis_start
b2b_start


# sent_copies LOG DIR KEY CSEQ-METHOD: for each call of a sipp message log,
# its Call-ID and how many copies (retransmissions included) of one message
# DIR (sent|recv) with start line KEY (a method or a code) and CSeq method
# it holds, a line each.
sent_copies() {
	awk -v dir="$2" -v key="$3" -v meth="$4" '
	{ sub(/\r$/, "") }
	/^-----/ { m = 0; next }
	/^[A-Z]+ message sent/ { d = "sent"; m = 1; k = ""; next }
	/^[A-Z]+ message received/ { d = "recv"; m = 1; k = ""; next }
	!m { next }
	k == "" { if (NF > 0) k = ($1 == "SIP/2.0") ? $2 : $1; next }
	tolower($1) == "call-id:" { cid = $2 }
	tolower($1) == "cseq:" && d == dir && k == key && $3 == meth { n[cid]++ }
	END { for (c in n) print c, n[c] }' "$1"
}

# sent_most LOG DIR KEY CSEQ-METHOD: the most copies of that message in any
# one call (sent_copies).
sent_most() {
	sent_copies "$@" | awk '$2 > most { most = $2 } END { print most + 0 }'
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

# handed_in_total: datagrams the workers received from one another.
handed_in_total() { cli_json workers '[.[].handed_in] | add'; }

# end_owned N [STATE]: once the N calls are all in STATE (RINGING), kill
# every worker that owns some (kill_owners) and check that together their
# successors end the N calls.
end_owned() {
	local n=$1 state=${2:-RINGING} ended
	wait_state 10 "length == $n and all(.[]; .state == \"$state\")" "$n calls $state"
	kill_owners 5 "unanswered ones are being ended"
	ended=$(sed -E 's/.*; ([0-9]+) unanswered ones are being ended .*, ([0-9]+) could not.*/\1 \2/' \
		"$T/takeovers" | awk '{ e += $1; lost += $2 } END { print e + 0, lost + 0 }')
	assert_eq "$n 0" "$ended" "the successors end the $n unanswered calls, none lost"
}

# ------------------------------------------------------------ 1. callees that ring for ever

N=200
uas_start uas uas_ring_crash -m $N
uac_start uac uac_ring_crash -m $N -r 100 -l $N
end_owned $N
sipp_wait uac || fail "uac exited $? (a caller got no 500, or another answer)"
uas_wait uas
assert_sipp_ok uac $N
assert_sipp_ok uas $N
assert_eq "$N" "$(msg_count "$T/uac.msg" recv 500/INVITE)" "every caller got 500"
# Its ACK stopped the retransmissions, wherever the kernel delivered it: one
# copy, or two on a loaded machine (T1 = 500 ms passed while the successor,
# answering 200 callers and cancelling 200 callees at once, had not read it).
# Under heavy load a few callers get more: when sipp, starved, has not
# ACKed the first copy by Timer G, the successor's NTA sent some 500s two
# or three times in the same instant (a capture on lo: one 500 at 52.433,
# then three copies within 0.11 ms at 52.935, before the ACK; 12 calls of
# 200 so, the others one copy; in another such run, instrumented, no
# datagram reached the successors through the hand-over).
# CI once saw one caller with 4 copies.  So the bound is on how many
# callers got more than two, not on the worst one.  The proof that every
# caller's ACK reached its transaction is the table emptying below: an
# ending without it keeps its slot for 32 s (Timer H).
sent_copies "$T/uac.msg" recv 500 INVITE >"$T/copies_500"
assert_between 0 $((N / 5)) "$(awk '$2 > 2' "$T/copies_500" | wc -l)" \
	"callers that got more than two copies of the 500 (most: $(awk '{ print $2 }' "$T/copies_500" | sort -n | tail -n 1))"
assert_eq "$N" "$(msg_count "$T/uas.msg" recv CANCEL)" "every callee got CANCEL"
assert_eq "$N" "$(msg_count "$T/uas.msg" recv ACK)" "every callee's 487 was ACKed"
assert_eq 0 "$(msg_count "$T/uas.msg" recv BYE)" "no BYE for calls never answered"
wait_for 5 calls_empty || fail "calls left in the table: $(cli show calls)"
wait_cdrs $N
assert_eq "$N" "$(jq '[.[] | select(.disposition == "FAILED" and .sip_code == "500" and .hangup_by == "system" and .answer_ms == "0")] | length' "$CDR_JSON")" \
	"$N CDRs FAILED 500, hung up by the system"
assert_eq "$N" "$(jq '[.[].a_call_id] | unique | length' "$CDR_JSON")" "one CDR per call"

# ------------------------------------------------------------ 2. callees that answer late

M=20
uas_start uas2 uas_answer_late -m $M
uac_start uac2 uac_ring_crash_silent -m $M -r 100 -l $M
end_owned $M
# The callers end at their 500 (sipp writes its trace at exit).
sipp_wait uac2 || fail "uac2 exited $? (a caller got no 500, or another answer)"
assert_sipp_ok uac2 $M
# Each caller's CANCEL (crossing the 500) and ACK reach the other worker's
# own port, as they may reach a worker that is not the owner: the CANCEL
# (the INVITE's Via: RFC 3261 9.1) is handed over by the call table, the
# ACK by its To tag.  The CANCEL's 200 goes to the test's socket (rport).
caller_requests "$T/uac2.msg" >"$T/requests"
handed_before=$(handed_in_total)
while IFS=$'\t' read -r ruri via from to cid to500; do
	owner=$(awk -v c="$cid" '$1 == c { print $2 }' "$T/owners")
	other_port=$((WORKER_PORT_BASE + 1 - owner))
	printf 'CANCEL %s SIP/2.0\r\nVia: %s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n' \
		"$ruri" "$via" "$from" "$to" "$cid" >"$T/cancel.txt"
	cat "$T/cancel.txt" >"/dev/udp/$ADDR/$other_port"
	printf 'ACK %s SIP/2.0\r\nVia: %s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n' \
		"$ruri" "$via" "$from" "$to500" "$cid" >"$T/ack.txt"
	cat "$T/ack.txt" >"/dev/udp/$ADDR/$other_port"
done <"$T/requests"
assert_eq "$M" "$(wc -l <"$T/requests")" "CANCELs and ACKs sent to the other worker"
uas_wait uas2
assert_sipp_ok uas2 $M
_handed_over() { [ "$(($(handed_in_total) - handed_before))" -ge $((2 * M)) ]; }
wait_for 3 _handed_over || fail "CANCELs and ACKs handed over: $(($(handed_in_total) - handed_before)) of $((2 * M))"
log "ok: $M CANCELs and ACKs reached the other worker and were handed over"
assert_eq "$M" "$(msg_count "$T/uas2.msg" recv ACK)" "every late 2xx was ACKed"
assert_eq "$M" "$(msg_count "$T/uas2.msg" recv BYE)" "every late 2xx was released with BYE"
max_sent=$(sent_most "$T/uas2.msg" sent 200 INVITE)
[ "$max_sent" -ge 1 ] && [ "$max_sent" -le 3 ] ||
	fail "a callee sent its 2xx $max_sent times (1 to 3 expected)"
log "ok: no callee sent its 2xx more than $max_sent times"
# An ending call leaves the table at its caller's ACK (or Timer H, 32 s).
wait_for 3 calls_empty || fail "calls left in the table: $(cli show calls)"
wait_cdrs $((N + M))
assert_eq "$((N + M))" "$(jq '[.[] | select(.disposition == "FAILED" and .sip_code == "500" and .hangup_by == "system")] | length' "$CDR_JSON")" \
	"$((N + M)) CDRs FAILED 500, hung up by the system"

# ------------------------------------------------------------ 3. callers that had cancelled

# The callee answers the first CANCEL 200 but ends its INVITE only after a
# second one: the worker dies while the calls are being cancelled.
K=10
uas_start uas3 uas_cancel_twice -m $K
uac_start uac3 uac_cancel -m $K -r 100 -l $K
end_owned $K ENDING
sipp_wait uac3 || fail "uac3 exited $? (a caller that cancelled got no 487)"
uas_wait uas3
assert_sipp_ok uac3 $K
assert_sipp_ok uas3 $K
assert_eq "$K" "$(msg_count "$T/uac3.msg" recv 487/INVITE)" "every caller that cancelled got 487"
assert_eq "$K" "$(msg_count "$T/uas3.msg" recv ACK)" "every callee's 487 was ACKed"
wait_for 5 calls_empty || fail "calls left in the table: $(cli show calls)"
wait_cdrs $((N + M + K))
assert_eq "$K" "$(jq '[.[] | select(.disposition == "CANCELLED" and .sip_code == "487" and .hangup_by == "caller")] | length' "$CDR_JSON")" \
	"$K CDRs CANCELLED 487, hung up by the caller"
log "ok: crash_ringing"
