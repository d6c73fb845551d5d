#!/bin/bash
#
# fork — parallel forking to every registered contact of the callee.
#
# bob registers two user agents, U1 ($ADDR:5080) and U2 ($ADDR:5081); one
# call to bob sends an INVITE to both.  Then, with new sipp UAS on the same
# two ports each time:
#   A. U1 answers 200, U2 rings forever: the caller gets 200, and U2 gets a
#      CANCEL (answered 200 and 487, whose ACK it gets);
#   B. U1 486, U2 603: the caller gets 603 (a 6xx beats everything);
#   C. U1 503 at once, U2 486 300 ms later: the caller gets 486 (the lowest
#      class wins, whatever the order);
#   D. U1 486 at once, U2 480 300 ms later: the caller gets 486 (within one
#      class the first answer is kept: b2b_better_failure in worker/b2b.c).
# Every B-leg failure is acknowledged by the daemon.  The caller is a
# trusted source (no INVITE digest).

. "$(dirname "$0")/lib.sh"

PREFIX=b2bua:
U1=5080
U2=5081


# rejecting NAME PORT CODE DELAY-MS: a UA of bob's that refuses.
rejecting() {
	uas_start "$1" reg_uas_reject -p "$2" -m 1 -key code "$3" -d "$4"
}

# both_refuse PART CODE1 CODE2 EXPECTED: the caller's answer when U1 and U2
# both refused (the UAS were started by the caller of this function).
both_refuse() {
	local part=$1
	uac_run "$part" uac_expect_code -s bob -m 1 -key maxfwd 70 -key extra_hdr "X-Test: none"
	uas_wait "${part}1"
	uas_wait "${part}2"
	assert_count "$T/${part}1.msg" recv INVITE 1
	assert_count "$T/${part}1.msg" sent "$2" 1
	assert_count "$T/${part}1.msg" recv ACK 1
	assert_count "$T/${part}2.msg" recv INVITE 1
	assert_count "$T/${part}2.msg" sent "$3" 1
	assert_count "$T/${part}2.msg" recv ACK 1
	assert_count "$T/$part.msg" recv "$4" 1
	assert_count "$T/$part.msg" recv 200 0
	assert_count "$T/$part.msg" sent ACK 1
	log "ok: part $part: $2 and $3 -> the caller got $4"
}

redis_start
registrar_config
CFG_EXTRA="$CFG_EXTRA
trusted = ( \"$ADDR\" );"
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"
add_user bob bobpw

for port in $U1 $U2; do
	uac_run "reg$port" reg_auth -p "$port" -s bob -ap bobpw -m 1 \
		-key exp_hdr "Expires: 3600" -key cparams ""
done
assert_eq "sip:bob@$ADDR:$U1 sip:bob@$ADDR:$U2" \
	"$(rcli HKEYS "${PREFIX}loc:bob" | sort | xargs)" "bob has two bindings"

# ---------------------------------------------------------------- A. 200 + ring: CANCEL
uas_start a1 uas_basic -p $U1 -m 1
uas_start a2 uas_ring_no_trying -p $U2 -m 1   # 180 first: see the scenario
uac_run a uac_basic -s bob -m 1
uas_wait a1
uas_wait a2
assert_sipp_ok a 1
assert_count "$T/a.msg" recv 200/INVITE 1
assert_count "$T/a.msg" recv 487 0
assert_count "$T/a.msg" recv 200/BYE 1
assert_count "$T/a1.msg" recv INVITE 1
assert_count "$T/a1.msg" recv ACK 1
assert_count "$T/a1.msg" recv BYE 1
assert_count "$T/a2.msg" recv INVITE 1
assert_count "$T/a2.msg" recv CANCEL 1
assert_count "$T/a2.msg" sent 487 1
assert_count "$T/a2.msg" recv ACK 1
assert_count "$T/a2.msg" recv BYE 0
assert_eq "INVITE sip:bob@$ADDR:$U1 SIP/2.0|INVITE sip:bob@$ADDR:$U2 SIP/2.0" \
	"$(grep -ah '^INVITE ' "$T/a1.msg" "$T/a2.msg" | tr -d '\r' | sort -u | paste -sd'|')" \
	"one INVITE to each registered contact"
assert_no_leak "$T/a.msg" "$T/a1.msg"
assert_no_leak "$T/a.msg" "$T/a2.msg"

# ---------------------------------------------------------------- B-D. both refuse
rejecting b1 $U1 486 0
rejecting b2 $U2 603 0
both_refuse b 486 603 603

rejecting c1 $U1 503 0
rejecting c2 $U2 486 300
both_refuse c 503 486 486

rejecting d1 $U1 486 0
rejecting d2 $U2 480 300
both_refuse d 486 480 486

calls_gone() { [ "$(stat_of calls_active)" = 0 ]; }
wait_for 5 calls_gone || fail "calls_active still $(stat_of calls_active)"
assert_no_grep "(error|crit)" "$T/b2bua.log" "no errors in the daemon's log"
log "PASS"
