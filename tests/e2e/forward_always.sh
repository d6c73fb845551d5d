#!/bin/bash
#
# forward_always — the two kinds of forwarding flows 9 and 10 do not cover,
# and a chain that is too long.
#
# Local users, each registered by its own sipp user agent where it has one;
# the caller is a trusted source.
#   1. Unconditional (fwd_always): bob forwards every call to carol.  bob's
#      registered user agent gets nothing; carol gets the INVITE with
#      "Diversion: <sip:bob@domain>;reason=unconditional;counter=1" and
#      answers; the CDR names bob as dialled and carol as forward target.
#   2. Unavailable: dave has no registration and fwd_noanswer = carol: the
#      call goes to carol at once with reason=unavailable (not 480).
#   3. Too long a chain: forward_max_hops = 2 and erin -> frank -> gus ->
#      carol, all unconditional: the call ends without reaching carol (480),
#      one CDR.
#   4. A loop: hank -> ivy -> hank, all unconditional: the second hop finds
#      hank already tried in this call and ends it with 482 (before the
#      forward_max_hops limit would), one CDR.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=20
BOB_PORT=$UAS_PORT
CAROL_PORT=$((UAS_PORT + 1))
redis_start
registrar_config
CFG_EXTRA="$CFG_EXTRA
trusted = ( \"$ADDR\" );
forward_max_hops = 2;"
b2b_start
wait_for 5 redis_up || fail "the workers did not connect to Redis"

add_user bob bob-pw --always carol
add_user carol carol-pw
add_user dave dave-pw --no-answer carol
add_user erin erin-pw --always frank
add_user frank frank-pw --always gus
add_user gus gus-pw --always carol
add_user hank hank-pw --always ivy
add_user ivy ivy-pw --always hank
register_as reg_bob bob bob-pw $BOB_PORT
register_as reg_carol carol carol-pw $CAROL_PORT

# --- 1. unconditional
uas_start bob uas_basic -m 1
uas_start carol uas_basic -m 1 -p $CAROL_PORT
uac_run uac1 uac_basic -m 1 -s bob -d 500
assert_sipp_ok uac1 1
uas_wait carol
assert_sipp_ok carol 1
assert_eq 0 "$(msg_count "$T/bob.msg" recv INVITE)" "1: bob's user agent got no INVITE"
assert_eq "<sip:bob@$ADDR>;reason=unconditional;counter=1" \
	"$(msg_header "$T/carol.msg" recv INVITE Diversion)" "1: carol's INVITE: Diversion"
wait_cdrs 1
assert_cdr 0 "callee=sip:bob@$ADDR:$SIP_PORT" "forwarded_to=carol" \
	"answered_by=sip:carol@$ADDR:$CAROL_PORT" "disposition=ANSWERED"
kill -TERM "${SIPP_PID[bob]}" 2>/dev/null

# --- 2. not registered: fwd_noanswer applies at once
uas_start carol2 uas_basic -m 1 -p $CAROL_PORT
uac_run uac2 uac_basic -m 1 -s dave -d 500
assert_sipp_ok uac2 1
uas_wait carol2
assert_sipp_ok carol2 1
assert_eq "<sip:dave@$ADDR>;reason=unavailable;counter=1" \
	"$(msg_header "$T/carol2.msg" recv INVITE Diversion)" "2: carol's INVITE: Diversion"
wait_cdrs 2
assert_cdr 1 "callee=sip:dave@$ADDR:$SIP_PORT" "forwarded_to=carol" "disposition=ANSWERED"

# --- 3. a chain longer than forward_max_hops
uac_run uac3 uac_expect_code -m 1 -s erin -key maxfwd 70 -key extra_hdr "X-Test: none"
assert_sipp_ok uac3 1
assert_eq 1 "$(msg_count "$T/uac3.msg" recv 480/INVITE)" "3: the caller got 480"
assert_grep 'forwarding chain longer than forward_max_hops \(2\)' "$T/b2bua.log" \
	"3: the log says why"
wait_cdrs 3
assert_cdr 2 "callee=sip:erin@$ADDR:$SIP_PORT" "disposition=NO_ANSWER" "sip_code=480" \
	"hangup_by=system"

# --- 4. a loop back to a user this call already tried
uac_run uac4 uac_expect_code -m 1 -s hank -key maxfwd 70 -key extra_hdr "X-Test: none"
assert_sipp_ok uac4 1
assert_eq 1 "$(msg_count "$T/uac4.msg" recv 482/INVITE)" "4: the caller got 482"
assert_grep "forwarding loops back to 'hank'" "$T/b2bua.log" "4: the log says why"
wait_cdrs 4
assert_cdr 3 "callee=sip:hank@$ADDR:$SIP_PORT" "sip_code=482"
log "ok: forward_always"
