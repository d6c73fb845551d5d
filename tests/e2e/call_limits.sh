#!/bin/bash
#
# call_limits — the per-subscriber concurrent-call limit (max_calls in
# "b2bua:user:NAME"; each counted call is a member of the sorted set
# "b2bua:active:NAME", member = the call key, score = its start in ms).
#
# Callers are peers (tests/sipp/limits_uac.xml: From host not our domain,
# so no digest) unless they are alice, a local subscriber who authenticates
# with a 407 (tests/sipp/uac_auth.xml).  bob's UA answers on $ADDR:5080,
# carol's on $ADDR:5081.
#   1. callee limit: bob max_calls=1.  A first call to bob stays up 4 s
#      (ANSWERED, one member in bob's set, named by the call key); a second
#      call meanwhile gets 486 and never reaches bob's UA;
#   2. busy forwarding on the limit: with fwd_busy=carol a third call
#      meanwhile goes to carol, whose INVITE carries the Diversion
#      "<sip:bob@domain>;reason=user-busy;counter=1"; once the first call
#      ended bob's set is empty and a new call to bob goes through;
#   3. caller limit: alice max_calls=1 holds a call to bob; a second call of
#      hers meanwhile gets 407 then "403 Call limit reached" and never
#      reaches bob; her set holds that one call (also in bob's set), then
#      nothing;
#   4. no limit: with bob's max_calls 0 (during 3.) and absent, two
#      concurrent calls to bob both go through.

. "$(dirname "$0")/lib.sh"

# shellcheck disable=SC2034  # read by lib.sh when it starts a sipp
SIPP_TIMEOUT=20   # every sipp here lasts a few seconds
PREFIX=b2bua:
BOB=5080
CAROL=5081
HOLD=8000         # ms a held call stays up: long enough for the steps it spans on a loaded machine


# register NAME PASSWORD PORT: NAME's UA binds $ADDR:PORT.
register() {
	uac_run "reg$1" reg_auth -p "$3" -s "$1" -ap "$2" -m 1 -key exp_hdr "Expires: 3600" \
		-key cparams ""
	assert_count "$T/reg$1.msg" recv 200 1
}

active() { rcli ZCARD "${PREFIX}active:$1"; }
active_is() { [ "$(active "$1")" = "$2" ]; }
answered_is() { [ "$(cli_json calls '[.[] | select(.state == "ANSWERED")] | length')" = "$1" ]; }

# wait_active USER N: USER's set has N members within 5 s.
wait_active() {
	wait_for 5 active_is "$1" "$2" ||
		fail "${PREFIX}active:$1 has $(active "$1") members, expected $2"
	log "ok: ${PREFIX}active:$1 has $2 member(s)"
}

# wait_answered N: show calls lists N ANSWERED calls within 5 s.
wait_answered() {
	wait_for 5 answered_is "$1" || fail "expected $1 ANSWERED calls: $(cli show calls)"
	log "ok: show calls: $1 ANSWERED"
}

# dialogs LOG: how many distinct Call-IDs a sipp message log holds, INVITEs
# sipp discarded included (a UAS past its -m logs those apart).
dialogs() { grep -ai '^call-id:' "$1" | tr -d '\r' | sort -u | wc -l; }

# peer NAME [ARGS...]: a peer calls bob, in the background.
peer() {
	local name=$1
	shift
	uac_start "$name" limits_uac -s bob -m 1 "$@"
}

# answered_call NAME: sipp run NAME got 200, ACKed it and hung up.
answered_call() {
	assert_count "$T/$1.msg" recv 200/INVITE 1
	assert_count "$T/$1.msg" sent ACK 1
	assert_count "$T/$1.msg" recv 200/BYE 1
}

# refused_call NAME CODE: sipp run NAME got CODE, no 200, and ACKed it.
refused_call() {
	assert_count "$T/$1.msg" recv "$2" 1
	assert_count "$T/$1.msg" recv 200 0
	assert_count "$T/$1.msg" sent ACK 1
}

redis_start
registrar_config
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"
add_user alice secret --max-calls 1   # for 3.; she makes no call before
add_user bob bobpw --max-calls 1       # for 1.
add_user carol carolpw
register bob bobpw $BOB
register carol carolpw $CAROL

# ---------------------------------------------------------------- 1. callee limit
uas_start b1 uas_basic -p $BOB -m 1
peer first -d $HOLD
wait_answered 1
wait_active bob 1
key=$(rcli ZRANGE "${PREFIX}active:bob" 0 -1 WITHSCORES | xargs)
[[ $key =~ ^e2e-call-limits-w[0-9]+-[0-9a-f]+-[0-9]+\ ([0-9]+)$ ]] ||
	fail "${PREFIX}active:bob: unexpected member/score '$key'"
age=$(($(date +%s%3N) - BASH_REMATCH[1]))
[ "$age" -ge 0 ] && [ "$age" -lt 10000 ] || fail "call started $age ms ago? ($key)"
log "ok: bob's set holds the call key, scored with its start ($key)"
ttl=$(rcli PTTL "${PREFIX}active:bob")
[ "$ttl" -gt 0 ] && [ "$ttl" -le 86400000 ] || fail "${PREFIX}active:bob PTTL $ttl"

peer busy
sipp_wait busy || fail "sipp busy failed"
refused_call busy 486
assert_grep "^SIP/2.0 486 Busy Here" "$T/busy.msg" "the caller got 486 Busy Here"
assert_count "$T/busy.msg" recv 180 0
assert_grep "call [^ ]+: 'bob' is at its max_calls" "$T/b2bua.log" "log: bob at max_calls"
wait_active bob 1

# ---------------------------------------------------------------- 2. busy forwarding
user_forward bob --busy carol
uas_start c1 uas_basic -p $CAROL -m 1
peer fwd
sipp_wait fwd || fail "sipp fwd failed"
uas_wait c1
answered_call fwd
assert_count "$T/fwd.msg" recv 486 0
assert_count "$T/c1.msg" recv INVITE 1
assert_eq "INVITE sip:carol@$ADDR:$CAROL SIP/2.0" \
	"$(grep -a -m1 '^INVITE ' "$T/c1.msg" | tr -d '\r')" "the busy call went to carol's UA"
assert_eq "<sip:bob@$ADDR>;reason=user-busy;counter=1" \
	"$(msg_header "$T/c1.msg" recv INVITE Diversion | sort -u)" \
	"carol's INVITE carries the Diversion from bob (user-busy)"
assert_grep "forwarding \\(user-busy\\) from 'bob' to carol" "$T/b2bua.log" \
	"log: forwarded on busy"
user_forward bob --clear

sipp_wait first || fail "sipp first failed"
uas_wait b1
answered_call first
assert_count "$T/b1.msg" recv INVITE 1
assert_eq 1 "$(dialogs "$T/b1.msg")" "bob's UA saw one call only (not the busy ones)"
wait_active bob 0
wait_active carol 0

uas_start b2 uas_basic -p $BOB -m 1
peer again
sipp_wait again || fail "sipp again failed"
uas_wait b2
answered_call again
assert_count "$T/b2.msg" recv INVITE 1
wait_active bob 0

# ---------------------------------------------------------------- 3. caller limit (+ 4. bob at 0)
# bob keeps his registration: his limit changes in place.
assert_eq "user bob changed" "$(cli user set bob --max-calls 0)" "user set bob --max-calls 0"
assert_eq 0 "$(rcli HGET "${PREFIX}user:bob" max_calls)" "bob's max_calls in Redis"
uas_start b3 uas_basic -p $BOB -m 2
uac_start held uac_auth -s bob -m 1 -key from alice -au alice -ap secret \
	-auth_uri "bob@$ADDR:$SIP_PORT" -d $HOLD
wait_answered 1
wait_active alice 1
alice_key=$(rcli ZRANGE "${PREFIX}active:alice" 0 -1)
assert_eq "$alice_key" "$(rcli ZRANGE "${PREFIX}active:bob" 0 -1)" \
	"the same call key counts for caller alice and callee bob"

uac_start over uac_auth -s bob -m 1 -key from alice -au alice -ap secret \
	-auth_uri "bob@$ADDR:$SIP_PORT"
sipp_wait over || fail "sipp over failed"
assert_count "$T/over.msg" recv 407 1
assert_count "$T/over.msg" recv 403 1
assert_count "$T/over.msg" recv 200 0
assert_count "$T/over.msg" sent ACK 2
assert_grep "^SIP/2.0 403 Call limit reached" "$T/over.msg" "403 Call limit reached"
assert_grep "call [^ ]+: caller 'alice' is at its max_calls" "$T/b2bua.log" \
	"log: alice at max_calls"
limit_cdr() {
	rcli --raw XRANGE "${PREFIX}cdr" - + | paste -sd' ' |
		grep -Eq 'disposition REFUSED sip_code 403 .*cause call_limit'
}
wait_for 5 limit_cdr || fail "no REFUSED CDR with cause call_limit"
log "ok: the refused call left a REFUSED CDR with cause call_limit"
wait_active alice 1

# 4a. max_calls 0: a second call to bob while alice's is up.
peer zero -d 1000
wait_answered 2
wait_active bob 2
sipp_wait zero || fail "sipp zero failed (bob's max_calls 0 must not limit)"
answered_call zero
sipp_wait held || fail "sipp held failed"
uas_wait b3
assert_count "$T/held.msg" recv 407 1
assert_count "$T/held.msg" recv 200/INVITE 1
assert_count "$T/held.msg" sent ACK 2
assert_count "$T/held.msg" recv 200/BYE 1
assert_count "$T/b3.msg" recv INVITE 2
assert_eq 2 "$(dialogs "$T/b3.msg")" "bob's UA saw alice's first call and the peer's"
wait_active alice 0
wait_active bob 0

# ---------------------------------------------------------------- 4b. max_calls absent
# A record without max_calls (older data): `user add` always writes the field.
rcli HDEL "${PREFIX}user:bob" max_calls >/dev/null
assert_eq 0 "$(rcli HEXISTS "${PREFIX}user:bob" max_calls)" "bob has no max_calls"
uas_start b4 uas_basic -p $BOB -m 2
peer p1 -d 1500
peer p2 -d 1500
wait_answered 2
wait_active bob 2
sipp_wait p1 || fail "sipp p1 failed"
sipp_wait p2 || fail "sipp p2 failed"
uas_wait b4
answered_call p1
answered_call p2
assert_eq 2 "$(dialogs "$T/b4.msg")" "bob's UA took both concurrent calls"
wait_active bob 0

assert_no_grep "(error|crit)" "$T/b2bua.log" "no errors in the daemon's log"
log "PASS"
