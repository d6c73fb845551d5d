#!/bin/bash
#
# session_timer_local — RFC 4028 refreshes that b2bua handles itself
# (issue 8, item 6), with session_expires = 6 and min_se = 4 (below RFC
# 4028's 90, allowed for tests only).  The callee answers without
# Session-Expires: its leg has no session timer.
#
#   1. The caller refreshes with body-less UPDATEs every 2 s: the other leg
#      has no timer, so b2bua answers them itself (200 with
#      Session-Expires); the callee sees none.  The call outlives its 6 s
#      interval and ends with the caller's BYE.
#   2. A caller without session timers and without UPDATE in an Allow: b2bua
#      takes the refresher role (refresher=uas, no Require) and refreshes
#      every 3 s with a re-INVITE repeating the callee's SDP; the call lasts
#      until the callee hangs up after 9 s.
#   3. A callee whose minimum is 8 s answers our INVITE (offering 6) with
#      422 and Min-SE 8: b2bua sends it again offering 8, the callee takes
#      the refresher role and vanishes: the call ends after 8 - 8/3 s.
# call_rest_after is 1 s: between refreshes the calls come to rest (their
# dialogs freed, worker/b2b_rest.c), and each refresh wakes them: ours in
# 2 (the caller's leg keeps its SDP copy at rest: we refresh it), and the
# BYEs of the expired session in 3 (calls_woken).

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=30
CFG_EXTRA="session_expires = 6;
min_se = 4;
call_rest_after = 1;"
redis_start
b2b_start

# woken_total: calls woken from rest, all workers.
woken_total() {
	local i v n=0
	for ((i = 0; i < CFG_WORKERS; i++)); do
		v=$(worker_counter $i calls_woken) || fail "show workers: no calls_woken for worker $i"
		n=$((n + v))
	done
	echo "$n"
}

# --- 1. refreshes answered by b2bua
uas_start uas1 uas_basic -m 1
uac_run uac1 uac_st_refresh -m 1
uas_wait uas1
assert_count "$T/uac1.msg" recv 200/UPDATE 5
assert_count "$T/uas1.msg" recv UPDATE 0
wait_for 5 calls_empty || fail "1: show calls not empty: $(cli show calls)"
wait_cdrs 1
assert_cdr 0 "disposition=ANSWERED" "sip_code=200" "hangup_by=caller"
assert_ge 9500 "$(cdr_get 0 billable_ms)" "1: ms billed (the session interval is 6 s)"
rcli DEL "$CDR_STREAM" >/dev/null

# --- 2. b2bua refreshes a caller without timers, by re-INVITE
uas_start uas2 uas_send_bye -m 1 -d 9000
uac_run uac2 uac_plain_refreshed -m 1
uas_wait uas2
n=$(msg_count "$T/uac2.msg" recv INVITE)
assert_ge 2 "$n" "2: re-INVITE refreshes the caller got in 9 s"
assert_count "$T/uac2.msg" sent 200/INVITE "$n"
# Each repeats the SDP the caller was given in the 200 (the callee's).
assert_eq $((n + 1)) "$(grep -c '^o=uas 53655765 2353687637' "$T/uac2.msg")" \
	"2: the callee's SDP in the 200 and in every refresh"
assert_count "$T/uas2.msg" recv INVITE 1
wait_for 5 calls_empty || fail "2: show calls not empty: $(cli show calls)"
wait_cdrs 1
assert_cdr 0 "disposition=ANSWERED" "sip_code=200" "hangup_by=callee"
assert_ge 8500 "$(cdr_get 0 billable_ms)" "2: ms billed (the session interval is 6 s)"
rcli DEL "$CDR_STREAM" >/dev/null
woken2=$(woken_total)
assert_ge 1 "$woken2" "2: calls woken from rest (our refreshes, 3 s apart)"

# --- 3. the callee's 422: INVITE again with its Min-SE
uas_start uas3 uas_st_422 -m 1
uac_run uac3 uac_st_long -m 1
uas_wait uas3
assert_seq "$T/uas3.msg" "3: callee" "recv INVITE" "sent 422/INVITE" "recv ACK" "recv INVITE" \
	"sent 200/INVITE" "recv ACK" "recv BYE" "sent 200/BYE"
assert_eq 1 "$(call_ids "$T/uas3.msg" recv | wc -l)" "3: both INVITEs in one B-leg dialog"
assert_seq "$T/uac3.msg" "3: caller" "sent INVITE" "recv 100/INVITE" "recv 200/INVITE" \
	"sent ACK" "recv BYE" "sent 200/BYE"
up=$(($(msg_time_ms "$T/uac3.msg" recv BYE) - $(msg_time_ms "$T/uac3.msg" recv 200)))
assert_between 5000 7000 "$up" "3: ms the call lasted (callee's session 8 s: 8 - 8/3 s)"
wait_for 5 calls_empty || fail "3: show calls not empty: $(cli show calls)"
wait_cdrs 1
assert_cdr 0 "disposition=ANSWERED" "sip_code=200" "hangup_by=callee"
assert_ge $((woken2 + 1)) "$(woken_total)" "3: the expired session woke its call for the BYEs"
assert_no_grep '\] error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
