#!/bin/bash
#
# call_registered — call flow 3 towards a registered user: the location
# service decides where the B-leg goes.
#
# bob's user agent registers from the callee's own port ($ADDR:$UAS_PORT,
# Contact = that address), then runs there as a sipp UAS.  A caller from a
# trusted source (no INVITE digest) dials sip:bob@$ADDR: the B-leg INVITE
# goes to bob's Contact as a new dialog (its own Call-ID, tags, branches),
# 200/ACK/BYE go through.  Then:
#   - an unknown user                  -> 404 Not Found
#   - a subscriber never registered    -> 480 Temporarily Unavailable
#   - a subscriber whose binding expired (Expires: 2) -> 480
# each with no ringing, acknowledged by the caller.

. "$(dirname "$0")/lib.sh"

PREFIX=b2bua:


# refused NAME USER CODE: a trusted caller dials USER and gets CODE.
refused() {
	uac_run "$1" uac_expect_code -s "$2" -m 1 -key maxfwd 70 -key extra_hdr "X-Test: none"
	assert_count "$T/$1.msg" recv "$3" 1
	assert_count "$T/$1.msg" recv 180 0
	assert_count "$T/$1.msg" sent ACK 1
}

redis_start
registrar_config
CFG_EXTRA="$CFG_EXTRA
register_min_expires = 1;
trusted = ( \"$ADDR\" );"
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"
add_user bob bobpw
add_user carol carolpw
add_user dave davepw

# dave: registered for 2 s only, from a port where nobody listens later.
uac_run rd reg_auth -p 5203 -s dave -ap davepw -m 1 -key exp_hdr "Expires: 2" -key cparams ""
dave_exp=$(rcli HGET "${PREFIX}loc:dave" "sip:dave@$ADDR:5203" | jq -r .expires)
[ -n "$dave_exp" ] && [ "$dave_exp" != null ] || fail "dave's binding is missing"

# bob's UA registers from the port it will answer on.
uac_run rb reg_auth -p "$UAS_PORT" -s bob -ap bobpw -m 1 -key exp_hdr "Expires: 3600" \
	-key cparams ""
assert_eq "<sip:bob@$ADDR:$UAS_PORT>;expires=3600" "$(msg_header "$T/rb.msg" recv 200 Contact)" \
	"bob bound to the UAS's address"
uas_start uas uas_basic -m 1

# ---------------------------------------------------------------- the call
uac_run uac uac_basic -s bob -m 1
uas_wait uas
assert_sipp_ok uac 1
assert_sipp_ok uas 1
assert_count "$T/uac.msg" sent INVITE 1
assert_count "$T/uac.msg" recv 180 1
assert_count "$T/uac.msg" recv 200/INVITE 1
assert_count "$T/uac.msg" recv 407 0
assert_count "$T/uac.msg" sent ACK 1
assert_count "$T/uac.msg" recv 200/BYE 1
assert_count "$T/uas.msg" recv INVITE 1
assert_count "$T/uas.msg" recv ACK 1
assert_count "$T/uas.msg" recv BYE 1
assert_eq "INVITE sip:bob@$ADDR:$UAS_PORT SIP/2.0" \
	"$(grep -a -m1 '^INVITE ' "$T/uas.msg" | tr -d '\r')" \
	"the B-leg INVITE went to bob's registered Contact"
a_cid=$(call_ids "$T/uac.msg" sent)
b_cid=$(call_ids "$T/uas.msg" recv)
[ -n "$b_cid" ] && [ "$b_cid" != "$a_cid" ] || fail "B-leg Call-ID '$b_cid' vs A-leg '$a_cid'"
log "ok: new Call-ID on the B-leg ($b_cid)"
assert_no_leak "$T/uac.msg" "$T/uas.msg"

# ---------------------------------------------------------------- refusals
refused nobody nobody 404
refused carol carol 480
assert_eq 0 "$(rcli EXISTS "${PREFIX}loc:carol")" "carol never registered"
left=$((dave_exp + 300 - $(date +%s%N) / 1000000))
[ "$left" -le 0 ] || sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"
refused dave dave 480

assert_no_grep "(error|crit)" "$T/b2bua.log" "no errors in the daemon's log"
log "PASS"
