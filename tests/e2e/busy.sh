#!/bin/bash
#
# busy — call flow 6: the callee answers 486 Busy Here.
#
# The 486 must reach the caller; the daemon acknowledges it on the B-leg
# (the callee's 486 is retransmitted until then) and the caller's ACK stays
# on the A-leg.  No call may stay in the table, and the daemon counts them as
# failed with final code 486.

. "$(dirname "$0")/lib.sh"

N=20

b2b_start
uas_start uas uas_busy -m $N
uac_run uac uac_busy -m $N -r 20
uas_wait uas
assert_sipp_ok uac $N
assert_sipp_ok uas $N

assert_count "$T/uac.msg" sent INVITE $N
assert_count "$T/uac.msg" recv 486 $N
assert_count "$T/uac.msg" recv 200 0
assert_count "$T/uac.msg" sent ACK $N
assert_count "$T/uas.msg" recv INVITE $N
assert_count "$T/uas.msg" sent 486 $N
assert_count "$T/uas.msg" recv ACK $N
# The B-leg ACK is the daemon's own (hop-by-hop for a non-2xx): its branch is
# the one of the B-leg INVITE, never the caller's.
assert_no_leak "$T/uac.msg" "$T/uas.msg"
assert_eq 0 "$(sipp_stat uas 'Retransmissions(C)')" "uas: 486 never retransmitted (ACKed at once)"

calls_gone() { [ "$(stat_of calls_active)" = 0 ]; }
wait_for 5 calls_gone || fail "calls_active still $(stat_of calls_active)"
assert_eq 0 "$(cli_json calls 'length')" "show calls: empty"
assert_eq $N "$(stat_of calls_total)" "stats: calls_total"
assert_eq 0 "$(stat_of calls_answered)" "stats: calls_answered"
assert_eq $N "$(stat_of calls_failed)" "stats: calls_failed"
assert_eq $N "$(stat_of 'final_codes["486"]')" "stats: final code 486"
log "PASS"
