#!/bin/bash
#
# cancel — call flow 7: the caller gives up while the callee rings.
#
# The caller's CANCEL is answered 200 by the daemon, which cancels the B-leg
# (the callee must see a CANCEL of its own INVITE), relays the 487 and
# acknowledges it on the B-leg; the caller ACKs its 487 on the A-leg.

. "$(dirname "$0")/lib.sh"

N=20

b2b_start
uas_start uas uas_ring_forever -m $N
uac_run uac uac_cancel -m $N -r 20
uas_wait uas
assert_sipp_ok uac $N
assert_sipp_ok uas $N

assert_count "$T/uac.msg" sent INVITE $N
assert_count "$T/uac.msg" recv 180 $N
assert_count "$T/uac.msg" sent CANCEL $N
assert_count "$T/uac.msg" recv 200/CANCEL $N
assert_count "$T/uac.msg" recv 487/INVITE $N
assert_count "$T/uac.msg" sent ACK $N
assert_count "$T/uas.msg" recv INVITE $N
assert_count "$T/uas.msg" recv CANCEL $N
assert_count "$T/uas.msg" sent 487/INVITE $N
assert_count "$T/uas.msg" recv ACK $N
assert_no_leak "$T/uac.msg" "$T/uas.msg"

# Each CANCEL the callee got is in the transaction of one of its INVITEs
# (same Call-ID and top Via branch: RFC 3261 9.1).
inv=$(msg_header "$T/uas.msg" recv INVITE Via | grep -o 'branch=[^;, ]*' | sort -u)
can=$(msg_header "$T/uas.msg" recv CANCEL Via | grep -o 'branch=[^;, ]*' | sort -u)
assert_eq "$inv" "$can" "uas: CANCEL branches = INVITE branches"

calls_gone() { [ "$(stat_of calls_active)" = 0 ]; }
wait_for 5 calls_gone || fail "calls_active still $(stat_of calls_active)"
assert_eq 0 "$(cli_json calls 'length')" "show calls: empty"
assert_eq $N "$(stat_of calls_total)" "stats: calls_total"
assert_eq 0 "$(stat_of calls_answered)" "stats: calls_answered"
assert_eq $N "$(stat_of 'final_codes["487"]')" "stats: final code 487"
log "PASS"
