#!/bin/bash
#
# register — call flow 1: REGISTER with a digest challenge, against a real
# redis-server, from real sipp user agents.
#
# What each part proves (every sipp run is one user agent on a port of its
# own, so each binding is told apart by its Contact):
#   - the 401 carries one MD5 challenge (auth_algorithms = [ "MD5" ] here) with our
#     realm, qop="auth" and a fresh nonce; the authenticated REGISTER gets a
#     200 listing the binding with its expiry, and Redis holds the binding
#     (source ip:port, Call-ID, CSeq, absolute expiry, host = node_id,
#     worker) with the key's PTTL following it;
#   - a wrong password and an unknown user get the same 401 (same headers,
#     same challenge but the nonce) and leave no binding;
#   - a refresh (same Call-ID, higher CSeq, same nonce with nc 2) keeps one
#     binding and moves its expiry; an equal or lower CSeq gets 400;
#   - Expires below register_min_expires gets 423 with Min-Expires;
#   - an Authorization replayed with the same nonce-count gets 401;
#   - credentials of another user than the To user get 403;
#   - after auth_fail_limit failures the source gets 403 even with the right
#     password.

. "$(dirname "$0")/lib.sh"

PREFIX=b2bua:
NODE=e2e-register

# reg NAME PORT USER PASSWORD EXPIRES-LINE CONTACT-PARAMS [SIPP ARGS...]:
# one reg_auth run from $ADDR:PORT (a user agent with its own Contact).
reg() {
	local name=$1 port=$2 user=$3 pw=$4 exp=$5 cparams=$6
	shift 6
	uac_run "$name" reg_auth -p "$port" -s "$user" -ap "$pw" -m 1 \
		-key exp_hdr "$exp" -key cparams "$cparams" "$@"
}

# binding USER CONTACT JQ: a field of one binding's JSON in Redis.
binding() {
	rcli HGET "${PREFIX}loc:$1" "$2" | jq -r "$3"
}

# shape LOG CODE: the last received CODE response as its status line and
# header names, in order, with the WWW-Authenticate values (nonce masked).
shape() {
	awk -v code="$2" '
	/^-----------------------------------------------/ { inmsg = 0; next }
	/^[A-Z]+ message received/ { inmsg = 1; first = 1; next }
	/^[A-Z]+ message sent/ { inmsg = 0; next }
	!inmsg { next }
	{ sub(/\r$/, "") }
	first && NF == 0 { next }
	first { first = 0; if ($1 == "SIP/2.0" && $2 == code) { n = 0; out[n++] = $0; take = 1 }
		else take = 0; next }
	!take { next }
	NF == 0 { take = 0; last = ""; for (i = 0; i < n; i++) last = last out[i] "\n"; next }
	{ name = $1
	  if (tolower(name) == "www-authenticate:") {
		v = $0; gsub(/nonce="[^"]*"/, "nonce=\"X\"", v); out[n++] = v
	  } else out[n++] = name }
	END { printf "%s", last }' "$1"
}

redis_start
registrar_config
CFG_EXTRA="$CFG_EXTRA
auth_fail_limit = 3;
auth_fail_window = 60;"
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"

add_user alice secret
add_user bob bobpw
add_user carol carolpw

# ---------------------------------------------------------------- 1. 401, then 200
reg r1 5201 alice secret "Expires: 3600" ""
assert_count "$T/r1.msg" sent REGISTER 2
assert_count "$T/r1.msg" recv 401 1
assert_count "$T/r1.msg" recv 200 1
chal=$(msg_header "$T/r1.msg" recv 401 WWW-Authenticate)
assert_eq 1 "$(printf '%s\n' "$chal" | wc -l)" "401: one challenge (MD5 only)"
re_chal="^Digest realm=\"$ADDR\", nonce=\"[A-Za-z0-9_-]{56}\", qop=\"auth\", algorithm=MD5\$"
[[ $chal =~ $re_chal ]] || fail "401 challenge: '$chal' !~ /$re_chal/"
log "ok: 401 challenge: $chal"
nonce1=$(printf '%s' "$chal" | sed 's/.*nonce="\([^"]*\)".*/\1/')
auth1=$(msg_header "$T/r1.msg" sent REGISTER Authorization)
[[ $auth1 == *"nonce=\"$nonce1\""* && $auth1 == *nc=00000001* ]] ||
	fail "sipp did not answer the challenge: $auth1"
assert_eq "<sip:alice@$ADDR:5201>;expires=3600" "$(msg_header "$T/r1.msg" recv 200 Contact)" \
	"200 lists the binding with its expiry"

cid1=$(msg_header "$T/r1.msg" sent REGISTER Call-ID | sort -u)
assert_eq "sip:alice@$ADDR:5201" "$(rcli HKEYS "${PREFIX}loc:alice")" "Redis: alice's one binding"
c1="sip:alice@$ADDR:5201"
assert_eq "$ADDR:5201" "$(binding alice "$c1" .source)" "binding source ip:port"
assert_eq "$cid1" "$(binding alice "$c1" .call_id)" "binding Call-ID"
assert_eq 2 "$(binding alice "$c1" .cseq)" "binding CSeq"
assert_eq 3600000 "$(binding alice "$c1" '.expires - .registered')" "binding lifetime (ms)"
assert_eq "$NODE" "$(binding alice "$c1" .host)" "binding host = node_id"
assert_eq udp "$(binding alice "$c1" .transport)" "binding transport"
assert_eq sipp-reg_auth "$(binding alice "$c1" .user_agent)" "binding User-Agent"
worker=$(binding alice "$c1" .worker)
[[ $worker == 0 || $worker == 1 ]] || fail "binding worker '$worker' is not 0 or 1"
log "ok: binding worker = $worker"
exp1=$(binding alice "$c1" .expires)
now_ms=$(($(date +%s%N) / 1000000))
[ $((exp1 - now_ms)) -gt 3590000 ] && [ $((exp1 - now_ms)) -le 3600000 ] ||
	fail "binding expires $exp1 is not now + 3600 s (now $now_ms)"
pttl=$(rcli PTTL "${PREFIX}loc:alice")
[ "$pttl" -gt 3590000 ] && [ "$pttl" -le 3600000 ] || fail "PTTL of loc:alice: $pttl"
log "ok: loc:alice PTTL $pttl ms"
assert_eq 1 "$(rcli EXISTS "${PREFIX}nc:$nonce1:00000001")" "nonce-count of r1 recorded"
ttl=$(rcli TTL "${PREFIX}nc:$nonce1:00000001")
[ "$ttl" -gt 0 ] && [ "$ttl" -le 300 ] || fail "nonce-count key TTL $ttl (nonce_ttl 300)"
assert_grep "REGISTER 'alice' from $ADDR:5201: 1 bindings" "$T/b2bua.log" "log: alice registered"

# ---------------------------------------------------------------- 2. wrong password, unknown user
reg r2 5202 alice wrong "Expires: 3600" ""
assert_count "$T/r2.msg" recv 401 2
assert_count "$T/r2.msg" recv 200 0
assert_eq "$c1" "$(rcli HKEYS "${PREFIX}loc:alice")" "wrong password: no new binding"
assert_grep "authentication of 'alice' from $ADDR:5202 failed" "$T/b2bua.log" \
	"log: wrong password"
nonce2=$(msg_header "$T/r2.msg" recv 401 WWW-Authenticate | head -n 1 |
	sed 's/.*nonce="\([^"]*\)".*/\1/')
[ "$nonce2" != "$nonce1" ] || fail "two challenges carried the same nonce $nonce1"
log "ok: every challenge has a fresh nonce"

reg r3 5203 nobody whatever "Expires: 3600" ""
assert_count "$T/r3.msg" recv 401 2
assert_count "$T/r3.msg" recv 200 0
assert_eq 0 "$(rcli EXISTS "${PREFIX}loc:nobody")" "unknown user: no binding"
shape_wrong=$(shape "$T/r2.msg" 401)
shape_unknown=$(shape "$T/r3.msg" 401)
[ -n "$shape_wrong" ] || fail "no 401 found in r2.msg"
assert_eq "$shape_wrong" "$shape_unknown" "unknown user and wrong password: same 401"
assert_eq 2 "$(rcli GET "${PREFIX}authfail:$ADDR")" "both counted as failures of $ADDR"

# ---------------------------------------------------------------- 3. refresh, out-of-order CSeq
uac_start r4 reg_refresh -p 5204 -s alice -ap secret -m 1 -d 1000 -key rcseq 12
c4="sip:alice@$ADDR:5204"
first_reg() { [ "$(binding alice "$c4" '.cseq // 0')" = 11 ]; }
wait_for 5 first_reg || fail "no binding with CSeq 11 for $c4"
exp4a=$(binding alice "$c4" .expires)
sipp_wait r4 || fail "sipp r4 failed"
assert_count "$T/r4.msg" sent REGISTER 3
assert_count "$T/r4.msg" recv 401 1
assert_count "$T/r4.msg" recv 200 2
assert_eq "nc=00000001 nc=00000002" \
	"$(msg_header "$T/r4.msg" sent REGISTER Authorization | grep -o 'nc=[0-9a-f]*' | xargs)" \
	"refresh reused the nonce with the next nonce-count"
assert_eq 12 "$(binding alice "$c4" .cseq)" "refresh: binding CSeq 12"
exp4b=$(binding alice "$c4" .expires)
[ $((exp4b - exp4a)) -ge 900 ] || fail "refresh did not extend the expiry ($exp4a -> $exp4b)"
log "ok: refresh extended the expiry by $((exp4b - exp4a)) ms"
assert_eq 2 "$(rcli HLEN "${PREFIX}loc:alice")" "refresh kept one binding per contact"
# Sofia writes one Contact header per binding: the last 200's are the last two.
last200=$(msg_header "$T/r4.msg" recv 200 Contact | tail -n 2 | sort | xargs)
[[ $last200 =~ ^"<$c1>;expires=35"[0-9][0-9]" <$c4>;expires=3600"$ ]] ||
	fail "refresh 200 does not list both bindings: $last200"
log "ok: refresh 200 lists both bindings: $last200"

for cs in 5 11; do
	uac_run "r5_$cs" reg_refresh -p 5205 -s alice -ap secret -m 1 -d 0 -key rcseq "$cs"
	assert_count "$T/r5_$cs.msg" recv 200 1
	assert_count "$T/r5_$cs.msg" recv 400 1
	assert_eq "SIP/2.0 400 Out of order request" \
		"$(grep -a '^SIP/2.0 400' "$T/r5_$cs.msg" | tr -d '\r' | sort -u)" \
		"CSeq $cs after 11: refused"
	assert_eq 11 "$(binding alice "sip:alice@$ADDR:5205" .cseq)" \
		"CSeq $cs: binding kept CSeq 11"
done

# ---------------------------------------------------------------- 4. 423 Interval Too Brief
reg r6 5206 alice secret "Expires: 30" ""
assert_count "$T/r6.msg" recv 423 1
assert_eq 60 "$(msg_header "$T/r6.msg" recv 423 Min-Expires)" "423 carries Min-Expires: 60"
assert_eq 0 "$(rcli HEXISTS "${PREFIX}loc:alice" "sip:alice@$ADDR:5206")" "423: no binding"
reg r6b 5206 alice secret "Expires: 3600" ";expires=10"
assert_count "$T/r6b.msg" recv 423 1
assert_eq 0 "$(rcli HEXISTS "${PREFIX}loc:alice" "sip:alice@$ADDR:5206")" \
	"423 (Contact ;expires=10): no binding"

# ---------------------------------------------------------------- 5. replayed nonce-count
reg1=$(binding alice "$c1" .registered)
uac_run r7 reg_replay -p 5201 -s alice -m 1 -cid_str "$cid1" -key cseq 3 \
	-key auth_line "Authorization: $auth1"
assert_eq "$auth1" "$(msg_header "$T/r7.msg" sent REGISTER Authorization)" \
	"r7 replayed r1's Authorization verbatim"
assert_count "$T/r7.msg" recv 401 1
assert_count "$T/r7.msg" recv 200 0
assert_grep "REGISTER of 'alice' from $ADDR:5201: nonce-count reused" "$T/b2bua.log" \
	"log: replay refused"
assert_eq 2 "$(binding alice "$c1" .cseq)" "replay: binding unchanged (CSeq 2)"
assert_eq "$reg1" "$(binding alice "$c1" .registered)" "replay: binding not re-registered"

# ---------------------------------------------------------------- 6. To user is not the auth user
before=$(rcli HKEYS "${PREFIX}loc:alice" | sort | xargs)
uac_run r8 reg_auth -p 5207 -s bob -au alice -ap secret -m 1 \
	-key exp_hdr "Expires: 3600" -key cparams ""
assert_eq "username=\"alice\"" \
	"$(msg_header "$T/r8.msg" sent REGISTER Authorization | grep -o 'username="[^"]*"')" \
	"r8 authenticated as alice"
assert_count "$T/r8.msg" recv 403 1
assert_eq 0 "$(rcli EXISTS "${PREFIX}loc:bob")" "403: no binding for bob"
assert_eq "$before" "$(rcli HKEYS "${PREFIX}loc:alice" | sort | xargs)" \
	"403: no binding for alice either"

# ---------------------------------------------------------------- 7. throttling
rcli DEL "${PREFIX}authfail:$ADDR" >/dev/null
uac_run r9 reg_auth -p 5208 -s carol -ap wrong -m 3 -key exp_hdr "Expires: 3600" -key cparams ""
assert_count "$T/r9.msg" recv 401 6
assert_count "$T/r9.msg" recv 200 0
three_fails() { [ "$(rcli GET "${PREFIX}authfail:$ADDR")" = 3 ]; }
wait_for 3 three_fails || fail "authfail:$ADDR is '$(rcli GET "${PREFIX}authfail:$ADDR")', not 3"
ttl=$(rcli TTL "${PREFIX}authfail:$ADDR")
[ "$ttl" -gt 0 ] && [ "$ttl" -le 60 ] || fail "authfail TTL $ttl (auth_fail_window 60)"
log "ok: 3 failures counted, window TTL $ttl s"
reg r10 5209 carol carolpw "Expires: 3600" ""
assert_count "$T/r10.msg" recv 401 1
assert_count "$T/r10.msg" recv 403 1
assert_count "$T/r10.msg" recv 200 0
assert_eq 0 "$(rcli EXISTS "${PREFIX}loc:carol")" "throttled: no binding"
assert_grep "source $ADDR:5209 throttled: 3 failed authentications" "$T/b2bua.log" \
	"log: source throttled"

assert_no_grep "(error|crit)" "$T/b2bua.log" "no errors in the daemon's log"
log "PASS"
