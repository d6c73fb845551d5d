#!/bin/bash
#
# basic_calls — call flows 3 and 5 through the daemon, 200 calls.
#
# 100 calls where the caller hangs up, then 100 where the callee does.
# Every call must succeed on both sides, each side must see exactly the
# messages of its own leg (INVITE, 180, 200, ACK, BYE, 200), and nothing that
# identifies the A-leg (Call-ID, From tag, Via branch) may reach the B-leg.
# The daemon's counters must agree.

. "$(dirname "$0")/lib.sh"

N=100

b2b_start

# --- the caller hangs up
uas_start uas1 uas_basic -m $N
uac_run uac1 uac_basic -m $N -r 50 -l 100 -d 200
uas_wait uas1
assert_sipp_ok uac1 $N
assert_sipp_ok uas1 $N

assert_count "$T/uac1.msg" sent INVITE $N
assert_count "$T/uac1.msg" recv 180 $N
assert_count "$T/uac1.msg" recv 200/INVITE $N
assert_count "$T/uac1.msg" sent ACK $N
assert_count "$T/uac1.msg" sent BYE $N
assert_count "$T/uac1.msg" recv 200/BYE $N
assert_count "$T/uas1.msg" recv INVITE $N
assert_count "$T/uas1.msg" sent 200/INVITE $N
assert_count "$T/uas1.msg" recv ACK $N
assert_count "$T/uas1.msg" recv BYE $N
assert_count "$T/uas1.msg" sent 200/BYE $N
# The daemon answers 100 Trying at once and absorbs the callee's: the caller
# gets exactly one per call (counted raw: a relayed copy would be identical).
assert_eq $N "$(grep -c '^SIP/2.0 100 ' "$T/uac1.msg")" "uac1: 100 Trying received"

# One B-leg dialog per call, none of them the A-leg's.
assert_eq $N "$(call_ids "$T/uas1.msg" recv | wc -l)" "uas1: distinct B-leg Call-IDs"
assert_no_leak "$T/uac1.msg" "$T/uas1.msg"

# --- the callee hangs up
uas_start uas2 uas_send_bye -m $N -d 200
uac_run uac2 uac_recv_bye -m $N -r 50 -l 100
uas_wait uas2
assert_sipp_ok uac2 $N
assert_sipp_ok uas2 $N

assert_count "$T/uac2.msg" sent INVITE $N
assert_count "$T/uac2.msg" recv 180 $N
assert_count "$T/uac2.msg" recv 200/INVITE $N
assert_count "$T/uac2.msg" sent ACK $N
assert_count "$T/uac2.msg" recv BYE $N
assert_count "$T/uac2.msg" sent 200/BYE $N
assert_count "$T/uas2.msg" recv INVITE $N
assert_count "$T/uas2.msg" recv ACK $N
assert_count "$T/uas2.msg" sent BYE $N
assert_count "$T/uas2.msg" recv 200/BYE $N
assert_eq $N "$(call_ids "$T/uas2.msg" recv | wc -l)" "uas2: distinct B-leg Call-IDs"
assert_no_leak "$T/uac2.msg" "$T/uas2.msg"

# The daemon's BYE towards the caller is in the caller's dialog: To carries
# the caller's own tag, From the tag the daemon gave in its 200.
assert_eq $N "$(msg_header "$T/uac2.msg" recv BYE To | grep -c 'tag=[0-9]*SIPpTag00')" \
	"uac2: BYEs with the caller's tag in To"
assert_eq 0 "$(msg_header "$T/uac2.msg" recv BYE From | grep -c 'SIPpTag')" \
	"uac2: BYEs whose From tag is the daemon's, not the callee's"

# --- the daemon's view
calls_gone() { [ "$(stat_of calls_active)" = 0 ]; }
wait_for 5 calls_gone || fail "calls_active still $(stat_of calls_active) after the calls ended"
assert_eq $((2 * N)) "$(stat_of calls_total)" "stats: calls_total"
assert_eq $((2 * N)) "$(stat_of calls_answered)" "stats: calls_answered"
assert_eq 0 "$(stat_of calls_failed)" "stats: calls_failed"
assert_eq 0 "$(cli_json calls 'length')" "show calls: empty after the calls ended"
# Every message of both legs went through the daemon: at least
# INVITE ACK BYE/200 from the caller side and 100/180/200/ACK... both ways.
assert_ge $((2 * N * 6)) "$(stat_of msgs_in)" "stats: msgs_in"
assert_ge $((2 * N * 6)) "$(stat_of msgs_out)" "stats: msgs_out"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
