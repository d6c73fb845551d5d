#!/bin/bash
#
# session_timer — RFC 4028 session timers on both legs (issue 8, item 6),
# with session_expires = 6 and min_se = 4 (below RFC 4028's 90, allowed
# for tests only).  Each leg is negotiated on its own: the caller asks for
# 60 s (Min-SE 60) and refreshes its own leg, the callee gets our 6 s.
#
#   0. A caller asking for Session-Expires 2 gets 422 with Min-SE 4, and no
#      call starts (no CDR: a negotiation step, like a challenge).
#   1. The callee takes the refresher role and never refreshes (it
#      vanished): b2bua ends the call within the interval (+ 32 s at most,
#      the issue's bound): BYE on both legs, one CDR hung up by the callee.
#   2. b2bua refreshes the callee's leg (refresher=uac) with UPDATE; the
#      callee answers the first and then stops answering: the call ends
#      within the interval after the last successful refresh, one CDR hung
#      up by the callee.
#   3. The caller refreshes every 2 s with UPDATE, for 10 s: the refreshes
#      go end to end (the callee's leg uses timers and allows UPDATE), the
#      call outlives its 6 s interval and ends with the caller's BYE.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=30
CFG_EXTRA="session_expires = 6;
min_se = 4;"
redis_start
b2b_start

# --- 0. too small: 422 with our Min-SE
uac_run uac0 uac_expect_code -m 1 -key maxfwd 70 -key extra_hdr "Session-Expires: 2"
assert_seq "$T/uac0.msg" "0: caller" "sent INVITE" "recv 100/INVITE" "recv 422/INVITE" "sent ACK"
assert_eq 4 "$(msg_header "$T/uac0.msg" recv 422 Min-SE | tr -d ' \r')" "0: Min-SE of the 422"
wait_for 5 calls_empty || fail "0: show calls not empty: $(cli show calls)"
sleep 0.5
assert_eq 0 "$(cdr_len)" "0: no CDR for the 422"

# --- 1. the callee is the refresher and vanishes
uas_start uas1 uas_st_refresher -m 1
uac_run uac1 uac_st_long -m 1
uas_wait uas1
assert_seq "$T/uac1.msg" "1: caller" "sent INVITE" "recv 100/INVITE" "recv 200/INVITE" \
	"sent ACK" "recv BYE" "sent 200/BYE"
assert_seq "$T/uas1.msg" "1: callee" "recv INVITE" "sent 200/INVITE" "recv ACK" "recv BYE" \
	"sent 200/BYE"
up=$(($(msg_time_ms "$T/uac1.msg" recv BYE) - $(msg_time_ms "$T/uac1.msg" recv 200)))
# Interval 6 s, the callee refreshes: gone after 6 - min(32, 6/3) = 4 s.
assert_between 3500 $((6000 + 32000)) "$up" "1: ms the call lasted (callee's session 6 s)"
assert_between 3500 6500 "$up" "1: ms the call lasted (4 s expected, checked once a second)"
assert_no_leak "$T/uac1.msg" "$T/uas1.msg"
wait_for 5 calls_empty || fail "1: show calls not empty: $(cli show calls)"
wait_cdrs 1
assert_cdr_fields 0
assert_cdr 0 "disposition=ANSWERED" "sip_code=200" "hangup_by=callee"
assert_cdr_times 0
rcli DEL "$CDR_STREAM" >/dev/null

# --- 2. b2bua refreshes the callee's leg; the callee stops answering
uas_start uas2 uas_st_mute -m 1
uac_run uac2 uac_st_long -m 1
uas_wait uas2
assert_seq "$T/uas2.msg" "2: callee" "recv INVITE" "sent 200/INVITE" "recv ACK" \
	"recv UPDATE" "sent 200/UPDATE" "recv UPDATE" "recv BYE" "sent 200/BYE"
refreshed=$(($(msg_time_ms "$T/uas2.msg" recv UPDATE) - $(msg_time_ms "$T/uas2.msg" recv ACK)))
assert_between 2500 4500 "$refreshed" "2: ms to our first refresh (half of 6 s)"
up=$(($(msg_time_ms "$T/uac2.msg" recv BYE) - $(msg_time_ms "$T/uac2.msg" recv 200)))
assert_between 6000 $((refreshed + 6000 + 32000)) "$up" \
	"2: ms the call lasted (its last refresh + 6 s interval, + 32 s at most)"
assert_between 6000 $((refreshed + 7500)) "$up" \
	"2: ms the call lasted (last refresh + 6 s expected, checked once a second)"
wait_for 5 calls_empty || fail "2: show calls not empty: $(cli show calls)"
wait_cdrs 1
assert_cdr 0 "disposition=ANSWERED" "sip_code=200" "hangup_by=callee"
assert_cdr_times 0
rcli DEL "$CDR_STREAM" >/dev/null

# --- 3. refreshes keep a call up past its interval
uas_start uas3 uas_st_refresh -m 1
uac_run uac3 uac_st_refresh -m 1
uas_wait uas3
assert_count "$T/uac3.msg" recv 200/UPDATE 5
assert_ge 4 "$(msg_count "$T/uas3.msg" recv UPDATE)" "3: refreshes that reached the callee"
assert_no_leak "$T/uac3.msg" "$T/uas3.msg"
wait_for 5 calls_empty || fail "3: show calls not empty: $(cli show calls)"
wait_cdrs 1
assert_cdr 0 "disposition=ANSWERED" "sip_code=200" "hangup_by=caller"
assert_cdr_times 0
assert_ge 9500 "$(cdr_get 0 billable_ms)" "3: ms billed (the session interval is 6 s)"
assert_no_grep '\] error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
