#!/bin/bash
#
# auth_algorithms — the digest challenges a 401 carries follow
# auth_algorithms, in its order, and only what was offered is accepted.
# tests/ua_digest prints every challenge in the order received and answers
# the algorithm it is told to (-f: even one that was not offered, with the
# first challenge's nonce: a downgrade attempt).  One daemon after another
# on the same Redis and subscriber:
#
#   1. the built-in default (the key absent): one MD5 challenge; MD5 gets
#      200; a SHA-256 answer to it gets 401 and binds nothing;
#   2. [ "SHA-256" ]: one SHA-256 challenge; SHA-256 gets 200; an MD5
#      answer (downgrade) gets 401 and binds nothing;
#   3. [ "MD5", "SHA-256" ]: MD5 first, SHA-256 second, one nonce; either
#      answer gets 200;
#   4. the deprecated auth_sha256 = true: SHA-256 first, then MD5, and the
#      daemon's log warns with the file and line of the key.

. "$(dirname "$0")/lib.sh"

PREFIX=b2bua:
UA=$top_builddir/tests/ua_digest
[ -x "$UA" ] || hard_error "$UA not built (make check builds it)"

# ua NAME PORT [ARGS...]: ua_digest as alice from $ADDR:PORT, bounded; its
# output in $T/NAME.out, its exit status returned.
ua() {
	local name=$1 port=$2
	shift 2
	timeout 10 "$UA" -l "$ADDR:$port" -r "$ADDR:$SIP_PORT" -u alice -p secret -w 4000 "$@" \
		>"$T/$name.out" 2>&1
}

# challenges NAME: the algorithms of the 401 ua_digest saw, in order.
challenges() { sed -n 's/^challenge [0-9]*: \([^ ]*\) .*/\1/p' "$T/$1.out" | xargs; }

# bound PORT: Redis holds alice's binding from $ADDR:PORT.
bound() { rcli HEXISTS "${PREFIX}loc:alice" "sip:alice@$ADDR:$1"; }

# daemon LINE: (re)start b2bua serving $ADDR with LINE as its auth line.
daemon() {
	[ -z "$B2B_PID" ] || b2b_stop || fail "b2bua did not stop cleanly"
	registrar_config "$1"
	write_config
	b2b_start
	wait_for 5 redis_up || fail "workers not connected to Redis"
}

redis_start

# ---------------------------------------------------------------- 1. the default
daemon "# auth_algorithms not set: the built-in default"
add_user alice secret
ua md5 5201 -a md5 || fail "ua_digest (MD5) exited $?: $(cat "$T/md5.out")"
assert_eq "MD5" "$(challenges md5)" "default: one challenge, MD5"
assert_grep "^final: 200 " "$T/md5.out" "default: MD5 answer, 200"
ua sha_forced 5202 -a sha256 -f
assert_eq 1 "$?" "default: SHA-256 answer not offered: ua_digest exit status"
assert_grep "^answering: SHA-256$" "$T/sha_forced.out" "ua_digest answered SHA-256 anyway"
assert_grep "^final: 401 " "$T/sha_forced.out" "default: SHA-256 answer, 401 again"
assert_eq 0 "$(bound 5202)" "default: SHA-256 answer binds nothing"

# ---------------------------------------------------------------- 2. SHA-256 only
daemon "auth_algorithms = [ \"SHA-256\" ];"
ua sha 5203 -a sha256 || fail "ua_digest (SHA-256) exited $?: $(cat "$T/sha.out")"
assert_eq "SHA-256" "$(challenges sha)" "[ SHA-256 ]: one challenge, SHA-256"
assert_grep "^final: 200 " "$T/sha.out" "[ SHA-256 ]: SHA-256 answer, 200"
assert_eq 1 "$(bound 5203)" "[ SHA-256 ]: binding stored"
ua md5_forced 5204 -a md5 -f
assert_eq 1 "$?" "[ SHA-256 ]: MD5 downgrade: ua_digest exit status"
assert_grep "^final: 401 " "$T/md5_forced.out" "[ SHA-256 ]: MD5 downgrade, 401 again"
assert_eq 0 "$(bound 5204)" "[ SHA-256 ]: MD5 downgrade binds nothing"

# ---------------------------------------------------------------- 3. MD5 first
daemon "auth_algorithms = [ \"MD5\", \"SHA-256\" ];"
ua both_sha 5205 -a sha256 || fail "ua_digest (SHA-256) exited $?: $(cat "$T/both_sha.out")"
assert_eq "MD5 SHA-256" "$(challenges both_sha)" "[ MD5, SHA-256 ]: MD5 first, SHA-256 second"
assert_eq 1 "$(sed -n 's/^challenge [0-9]*: .* nonce=\([^ ]*\) .*/\1/p' "$T/both_sha.out" |
	sort -u | wc -l)" "[ MD5, SHA-256 ]: one nonce"
assert_grep "^final: 200 " "$T/both_sha.out" "[ MD5, SHA-256 ]: SHA-256 answer, 200"
ua both_md5 5206 -a md5 || fail "ua_digest (MD5) exited $?: $(cat "$T/both_md5.out")"
assert_grep "^final: 200 " "$T/both_md5.out" "[ MD5, SHA-256 ]: MD5 answer, 200"

# ---------------------------------------------------------------- 4. the deprecated alias
daemon "auth_sha256 = true;"
ua alias 5207 -a sha256 || fail "ua_digest (alias) exited $?: $(cat "$T/alias.out")"
assert_eq "SHA-256 MD5" "$(challenges alias)" "auth_sha256 = true: SHA-256 first, then MD5"
line=$(grep -n '^auth_sha256 = true;$' "$CONF" | cut -d: -f1)
assert_grep "warn: $CONF:$line: auth_sha256: deprecated: write auth_algorithms = \[ \"SHA-256\", \"MD5\" \]; instead" \
	"$T/b2bua.log" "the log warns of auth_sha256 with file and line"

assert_no_grep "(error|crit)" "$T/b2bua.log" "no errors in the daemon's log"
log "PASS"
