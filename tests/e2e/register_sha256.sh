#!/bin/bash
#
# register_sha256 — call flow 1 with SHA-256 offered first:
# auth_algorithms = [ "SHA-256", "MD5" ] (the default offers MD5 only; see
# auth_algorithms.sh).
#
#   - a REGISTER without credentials (sipp, expecting only the 401) gets two
#     WWW-Authenticate headers, SHA-256 first, then MD5 (RFC 8760), with one
#     and the same nonce;
#   - tests/ua_digest (a small C user agent: real SIP over UDP, Sofia-SIP's
#     parser, digest_ha1() plus its own nettle hashing) answers the SHA-256
#     challenge: 200 listing its binding, and Redis holds the binding;
#   - the same with -a md5 (the second challenge) as a cross-check;
#   - a wrong password gets 401 again, and a subscriber stored with an MD5
#     HA1 only cannot use SHA-256 (401) but can use MD5 (200).

. "$(dirname "$0")/lib.sh"

PREFIX=b2bua:
UA=$top_builddir/tests/ua_digest
[ -x "$UA" ] || hard_error "$UA not built (make check builds it)"


# ua NAME PORT USER PASSWORD [ARGS...]: ua_digest from $ADDR:PORT, bounded;
# its output in $T/NAME.out, its exit status returned.
ua() {
	local name=$1 port=$2 user=$3 pw=$4
	shift 4
	timeout 10 "$UA" -l "$ADDR:$port" -r "$ADDR:$SIP_PORT" -u "$user" -p "$pw" -w 4000 "$@" \
		>"$T/$name.out" 2>&1
}

redis_start
registrar_config "auth_algorithms = [ \"SHA-256\", \"MD5\" ];"
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"
add_user alice secret
# legacy: a record from before SHA-256, with an MD5 HA1 only.  `user add`
# always stores both HA1s, so the SHA-256 one is removed by hand.
add_user legacy oldpw
assert_eq 1 "$(rcli HDEL "${PREFIX}user:legacy" ha1_sha256)" "legacy: ha1_sha256 removed"

# ---------------------------------------------------------------- the two challenges
uac_run ch reg_challenge -p 5201 -s alice -m 1
assert_count "$T/ch.msg" recv 401 1
mapfile -t chal < <(msg_header "$T/ch.msg" recv 401 WWW-Authenticate)
assert_eq 2 "${#chal[@]}" "401: two WWW-Authenticate headers"
re="^Digest realm=\"$ADDR\", nonce=\"([A-Za-z0-9_-]{56})\", qop=\"auth\", algorithm="
re_sha="${re}SHA-256\$"
re_md5="${re}MD5\$"
[[ ${chal[0]} =~ $re_sha ]] || fail "first challenge is not SHA-256: ${chal[0]}"
nonce_sha=${BASH_REMATCH[1]}
[[ ${chal[1]} =~ $re_md5 ]] || fail "second challenge is not MD5: ${chal[1]}"
nonce_md5=${BASH_REMATCH[1]}
log "ok: SHA-256 first, MD5 second"
assert_eq "$nonce_sha" "$nonce_md5" "both challenges carry one nonce"
assert_eq 0 "$(rcli EXISTS "${PREFIX}loc:alice")" "a challenge alone binds nothing"

# ---------------------------------------------------------------- SHA-256
ua sha 5202 alice secret || fail "ua_digest (SHA-256) exited $?: $(cat "$T/sha.out")"
assert_grep "^challenge 1: SHA-256 realm=$ADDR " "$T/sha.out" "ua_digest saw SHA-256 first"
assert_grep "^challenge 2: MD5 realm=$ADDR " "$T/sha.out" "ua_digest saw MD5 second"
assert_grep "^answering: SHA-256$" "$T/sha.out" "ua_digest answered SHA-256"
assert_grep "^final: 200 " "$T/sha.out" "SHA-256: 200"
assert_grep "^contact: <sip:alice@$ADDR:5202>;expires=3600$" "$T/sha.out" \
	"the 200 lists the binding"
cid=$(sed -n 's/^call-id: //p' "$T/sha.out")
b=$(rcli HGET "${PREFIX}loc:alice" "sip:alice@$ADDR:5202")
assert_eq "$cid" "$(printf '%s' "$b" | jq -r .call_id)" "Redis: binding with ua_digest's Call-ID"
assert_eq "$ADDR:5202 2 ua_digest" \
	"$(printf '%s' "$b" | jq -r '"\(.source) \(.cseq) \(.user_agent)"')" \
	"Redis: binding source, CSeq and User-Agent"
nonce=$(sed -n 's/^challenge 1: SHA-256 .* nonce=\([^ ]*\) .*/\1/p' "$T/sha.out")
assert_eq 1 "$(rcli EXISTS "${PREFIX}nc:$nonce:00000001")" "the SHA-256 nonce-count is recorded"

# ---------------------------------------------------------------- MD5 cross-check
ua md5 5203 alice secret -a md5 || fail "ua_digest (MD5) exited $?: $(cat "$T/md5.out")"
assert_grep "^answering: MD5$" "$T/md5.out" "ua_digest answered MD5"
assert_grep "^final: 200 " "$T/md5.out" "MD5: 200"
assert_eq "sip:alice@$ADDR:5202 sip:alice@$ADDR:5203" \
	"$(rcli HKEYS "${PREFIX}loc:alice" | sort | xargs)" "Redis: both bindings"

# ---------------------------------------------------------------- refusals
ua wrong 5204 alice not-the-password
assert_eq 1 "$?" "wrong password: ua_digest exit status"
assert_grep "^final: 401 " "$T/wrong.out" "wrong password: 401 again"
assert_eq 0 "$(rcli HEXISTS "${PREFIX}loc:alice" "sip:alice@$ADDR:5204")" \
	"wrong password: no binding"

ua legacy_sha 5205 legacy oldpw
assert_eq 1 "$?" "MD5-only subscriber with SHA-256: ua_digest exit status"
assert_grep "^final: 401 " "$T/legacy_sha.out" "MD5-only subscriber with SHA-256: 401"
ua legacy_md5 5206 legacy oldpw -a md5 ||
	fail "ua_digest (legacy, MD5) exited $?: $(cat "$T/legacy_md5.out")"
assert_grep "^final: 200 " "$T/legacy_md5.out" "MD5-only subscriber with MD5: 200"
assert_eq "sip:legacy@$ADDR:5206" "$(rcli HKEYS "${PREFIX}loc:legacy")" "Redis: legacy's binding"

assert_grep "REGISTER 'alice' from $ADDR:5202: 1 bindings" "$T/b2bua.log" "log: SHA-256 REGISTER"
assert_no_grep "(error|crit)" "$T/b2bua.log" "no errors in the daemon's log"
log "PASS"
