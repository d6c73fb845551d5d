#!/bin/bash
#
# silent_callee — invite_timeout and CANCEL hold whatever the callee does
# (issue 8, item 5).  The callee sends nothing at all, not even 100 Trying.
#
#   1. The caller gets 408 within invite_timeout + 1 s (not after NTA's
#      32 s Timer B); the callee gets no CANCEL (no provisional came, RFC
#      3261 9.1).  CDR NO_ANSWER, 408, ended by the system, lasting
#      invite_timeout.
#   2. The caller cancels: its CANCEL gets 200 and the INVITE 487 within
#      1 s, without waiting for the callee.  CDR CANCELLED, 487, hung up by
#      the caller.
#   3. The callee stays silent past invite_timeout, then answers 200: the
#      caller has had its 408; the callee's dialog is ACKed and released
#      with BYE.  CDR NO_ANSWER, 408, ended by the system.
# Each call has exactly one CDR; the call table empties once the silent
# B-legs are over (NTA gives up on them).

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=20
CFG_INVITE_TIMEOUT=2
# Part 3's callee has its own port (route "2"): the silent B-legs of parts 1
# and 2 are still being retransmitted to the first one.
LATE_PORT=$((UAS_PORT + 1))
CFG_ROUTES="$CFG_ROUTES, { prefix = \"2\"; target = \"sip:$ADDR:$LATE_PORT;transport=udp\"; }"
redis_start
b2b_start

uas_start uas uas_silent -m 2

# --- 1. invite_timeout
uac_run uac1 uac_expect_code -m 1 -key maxfwd 70 -key extra_hdr "X-Test: silent"
assert_seq "$T/uac1.msg" "1: caller" "sent INVITE" "recv 100/INVITE" "recv 408/INVITE" "sent ACK"
waited=$(($(msg_time_ms "$T/uac1.msg" recv 408) - $(msg_time_ms "$T/uac1.msg" sent INVITE)))
assert_between $((CFG_INVITE_TIMEOUT * 1000 - 200)) $(((CFG_INVITE_TIMEOUT + 1) * 1000)) \
	"$waited" "1: ms from INVITE to 408 (invite_timeout $CFG_INVITE_TIMEOUT s)"

# --- 2. CANCEL
uac_run uac2 uac_cancel_early -m 1
assert_seq "$T/uac2.msg" "2: caller" "sent INVITE" "recv 100/INVITE" "sent CANCEL" \
	"recv 200/CANCEL" "recv 487/INVITE" "sent ACK"
waited=$(($(msg_time_ms "$T/uac2.msg" recv 487) - $(msg_time_ms "$T/uac2.msg" sent CANCEL)))
assert_between 0 1000 "$waited" "2: ms from CANCEL to 487"

uas_wait uas
assert_count "$T/uas.msg" recv CANCEL 0
assert_ge 2 "$(msg_count "$T/uas.msg" recv INVITE)" "callee: INVITEs received"
assert_no_leak "$T/uac1.msg" "$T/uas.msg"

# --- 3. a 200 after invite_timeout
uas_start uas3 uas_silent_late_200 -m 1 -p $LATE_PORT
uac_run uac3 uac_expect_code -m 1 -s 2000 -key maxfwd 70 -key extra_hdr "X-Test: late"
uas_wait uas3
assert_seq "$T/uac3.msg" "3: caller" "sent INVITE" "recv 100/INVITE" "recv 408/INVITE" "sent ACK"
assert_seq "$T/uas3.msg" "3: callee" "recv INVITE" "sent 200/INVITE" "recv ACK" "recv BYE" \
	"sent 200/BYE"
assert_count "$T/uas3.msg" recv CANCEL 0

# The B-legs end when NTA gives up on them (the callee's port is closed now,
# or Timer B); then each call has its one CDR, dated when the caller got its
# answer.
wait_for 40 calls_empty || fail "show calls not empty: $(cli show calls)"
wait_cdrs 3
i=$(cdr_index ".a_call_id == \"$(call_ids "$T/uac1.msg" sent)\"")
assert_cdr_fields "$i"
assert_cdr "$i" "disposition=NO_ANSWER" "sip_code=408" "hangup_by=system" "answer_ms=0" \
	"answered_by=" "billable_ms=0"
assert_cdr_times "$i"
assert_between $((CFG_INVITE_TIMEOUT * 1000 - 200)) $(((CFG_INVITE_TIMEOUT + 1) * 1000)) \
	$(($(cdr_get "$i" end_ms) - $(cdr_get "$i" start_ms))) "1: CDR duration"
i=$(cdr_index ".a_call_id == \"$(call_ids "$T/uac2.msg" sent)\"")
assert_cdr "$i" "disposition=CANCELLED" "sip_code=487" "hangup_by=caller" "answer_ms=0" \
	"billable_ms=0"
assert_cdr_times "$i"
assert_between 0 1500 $(($(cdr_get "$i" end_ms) - $(cdr_get "$i" start_ms))) "2: CDR duration"
i=$(cdr_index ".a_call_id == \"$(call_ids "$T/uac3.msg" sent)\"")
assert_cdr "$i" "disposition=NO_ANSWER" "sip_code=408" "hangup_by=system" "answer_ms=0" \
	"answered_by=" "billable_ms=0"
assert_cdr_times "$i"
# Sofia's tport_udp_error warning is expected: the callee's port closes.
assert_no_grep '\] error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
