#!/bin/bash
#
# register_expiry — bindings expire by themselves (flow 1, last sentence).
#
# dave registers two user agents: A ($ADDR:5201) for 2 s and B (:5202) for
# 5 s (register_min_expires = 1 allows it).  The key's PTTL follows the
# longest binding.  Once A's binding is past its expiry but B's is not, A's
# field is still stored (the key lives on for B) and must be ignored: a call
# to dave reaches B only (B answers 486, the caller gets 486).  Once B's
# binding expired too, the key is gone (its PEXPIREAT) and a call to dave
# gets 480 Temporarily Unavailable.  A keeps listening throughout and must
# never see an INVITE.  The caller is a trusted source (no INVITE digest).

. "$(dirname "$0")/lib.sh"

PREFIX=b2bua:
LOC=${PREFIX}loc:dave


now_ms() { echo $(($(date +%s%N) / 1000000)); }

# sleep_until MS: sleep until the wall clock reaches MS (epoch milliseconds).
sleep_until() {
	local left=$(($1 - $(now_ms)))
	[ "$left" -le 0 ] || sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"
}

# call NAME: a trusted caller dials dave and expects a refusal.
call() {
	uac_run "$1" uac_expect_code -s dave -m 1 -key maxfwd 70 -key extra_hdr "X-Test: none"
}

redis_start
registrar_config
CFG_EXTRA="$CFG_EXTRA
register_min_expires = 1;
trusted = ( \"$ADDR\" );"
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"
add_user dave davepw

uac_run ra reg_auth -p 5201 -s dave -ap davepw -m 1 -key exp_hdr "Expires: 2" -key cparams ""
uac_run rb reg_auth -p 5202 -s dave -ap davepw -m 1 -key exp_hdr "Expires: 5" -key cparams ""
assert_eq "<sip:dave@$ADDR:5201>;expires=2" "$(msg_header "$T/ra.msg" recv 200 Contact)" \
	"200 lists A's binding for 2 s"
assert_count "$T/rb.msg" recv 200 1
exp_a=$(rcli HGET "$LOC" "sip:dave@$ADDR:5201" | jq -r .expires)
exp_b=$(rcli HGET "$LOC" "sip:dave@$ADDR:5202" | jq -r .expires)
assert_eq 2000 "$(rcli HGET "$LOC" "sip:dave@$ADDR:5201" | jq -r '.expires - .registered')" \
	"A's binding lives 2000 ms"
assert_eq 5000 "$(rcli HGET "$LOC" "sip:dave@$ADDR:5202" | jq -r '.expires - .registered')" \
	"B's binding lives 5000 ms"
pttl=$(rcli PTTL "$LOC")
[ "$pttl" -gt 2000 ] && [ "$pttl" -le 5000 ] || fail "PTTL $pttl does not follow B's 5 s"
log "ok: $LOC PTTL $pttl ms (the longest binding)"

uas_start ua uas_busy -p 5201 -m 1
uas_start ub uas_busy -p 5202 -m 1

# A expired, B not yet.
sleep_until $((exp_a + 300))
[ "$(now_ms)" -lt $((exp_b - 1000)) ] || fail "too slow: B's binding is about to expire"
assert_eq 1 "$(rcli HEXISTS "$LOC" "sip:dave@$ADDR:5201")" "A's stale field is still stored"
call c1
assert_count "$T/c1.msg" recv 486 1
uas_wait ub
assert_count "$T/ub.msg" recv INVITE 1
assert_count "$T/ua.msg" recv INVITE 0

# Both expired: the key is gone with its TTL, and dave is unavailable.
sleep_until $((exp_b + 300))
assert_eq 0 "$(rcli EXISTS "$LOC")" "$LOC expired with its last binding"
call c2
assert_count "$T/c2.msg" recv 480 1
assert_count "$T/c2.msg" recv 486 0
assert_count "$T/ua.msg" recv INVITE 0
assert_eq 1 "$(rcli EXISTS "${PREFIX}user:dave")" "dave himself is still a subscriber"

assert_no_grep "(error|crit)" "$T/b2bua.log" "no errors in the daemon's log"
log "PASS"
