#!/bin/bash
#
# svwar — SIPVicious's extension scanner (Debian package sipvicious) finds
# no user (issue 8, item 1).  Subscribers 2001 and 2003 exist, 2002 is
# disabled; none is registered (a registered user's phone rings, which
# tells anyone that it exists: set allow_unauthenticated_to_local = false
# where that matters).  svwar scans 2000-2005 from an address that is not
# trusted with each of its methods, REGISTER, OPTIONS and INVITE; it must
# report no extension and exit 0 (it exits 40 when it found some): every
# name gets the answer a random name gets, so it has nothing to go on.
# The same INVITE scan from a trusted address (a trunk is told 480 for a
# subscriber and 404 for anything else) finds 2001 and 2003: the scanner
# works here, the policy is what stops it.  Each scan is bounded
# (--maximumtime and a timeout).

. "$(dirname "$0")/lib.sh"

SVWAR=$(command -v sipvicious_svwar || command -v svwar) ||
	skip "svwar not found (Debian package sipvicious: apt-get install sipvicious)"
OTHER=$(other_addr 1)
SV_PORT=5210


# svwar_run SOURCE METHOD OUT: svwar over 2000-2005 from SOURCE with METHOD
# into OUT; returns its exit status.  Never -R or -A (they reach the
# Internet); HOME in $T so that nothing lands in ~.
svwar_run() {
	local rc
	SV_PORT=$((SV_PORT + 1))
	HOME=$T timeout 60 "$SVWAR" -b "$1" -P "$SV_PORT" -p "$SIP_PORT" -m "$2" \
		-e 2000-2005 --force --maximumtime 5 -t 0.05 "$ADDR" >"$3" 2>&1
	rc=$?
	log "svwar -m $2 from $1 exited $rc: $(grep -v '^$' "$3" | tail -n 3 | cut -c1-200 | xargs)"
	return "$rc"
}

# scan METHOD: svwar from the untrusted address with METHOD; fails the test
# when it finds an extension or does not end cleanly.
scan() {
	local method=$1 out=$T/svwar-$1.out rc
	svwar_run "$OTHER" "$method" "$out"
	rc=$?
	if grep -Eq "exists|[|] *200[0-5] *[|]" "$out"; then
		fail "svwar -m $method found extensions: $(grep -E 'exists|[|]' "$out" | head -n 5 | xargs)"
	fi
	[ "$rc" -eq 0 ] || fail "svwar -m $method exited $rc (40: found extensions; 30: no answer)"
	assert_no_grep "[|] *[0-9]+ *[|]" "$out" "svwar -m $method listed no extension"
	assert_grep "found nothing" "$out" "svwar -m $method found nothing"
}

redis_start
registrar_config
CFG_EXTRA="$CFG_EXTRA
trusted = ( \"$ADDR\" );"
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"
add_user 2001 pw2001
add_user 2002 pw2002
add_user 2003 pw2003
out=$(cli user disable 2002 2>&1) || fail "user disable 2002: $out"

scan REGISTER
scan OPTIONS
scan INVITE

# The control: trusted, the truth shows.  sipvicious 0.3.3 (Debian 12)
# ignores -b and sends from whatever address the kernel picks, so the
# control trusts the whole loopback range rather than one address.
b2b_stop >/dev/null || true
CFG_EXTRA="${CFG_EXTRA/trusted = ( \"$ADDR\" );/trusted = ( \"127.0.0.0/8\" );}"
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"
svwar_run "$OTHER" INVITE "$T/svwar-trusted.out"
rc=$?
# 0.3.3 exits 0 whatever it found, later versions 40 when they found some.
[ "$rc" -eq 0 ] || [ "$rc" -eq 40 ] || fail "svwar from a trusted address exited $rc"
for ext in 2001 2003; do
	assert_grep "[|] *$ext *[|]" "$T/svwar-trusted.out" "the trusted scan found $ext"
done
assert_no_grep "[|] *200[0245] *[|]" "$T/svwar-trusted.out" "the trusted scan found nothing else"
