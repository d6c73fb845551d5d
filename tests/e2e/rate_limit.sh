#!/bin/bash
#
# rate_limit — per-source rate limits for INVITE and REGISTER (issue 8,
# item 1), with rate_limit_invite = rate_limit_register = 5 per second and
# bursts of 5:
#   1. a burst of 40 INVITEs from one untrusted source: the first ones get
#      their normal answer (480: a name nobody has), the rest 503 with
#      Retry-After, and show stats counts exactly the 503s
#      (rate_limited_invite);
#   2. another untrusted source meanwhile: not limited;
#   3. the trusted source ($ADDR): never limited, even in a burst;
#   4. the same for REGISTER (401 / 503, rate_limited_register).

. "$(dirname "$0")/lib.sh"

# shellcheck disable=SC2034  # read by lib.sh when it starts a sipp
SIPP_TIMEOUT=20
FLOODER=$(other_addr 1)
NEIGHBOUR=$(other_addr 2)
BURST=40


# invites NAME SOURCE N: N INVITEs for ghost@domain from SOURCE, fast.
invites() {
	uac_start_from "$2" "$1" probe_invite -s ghost -m "$3" -r 400 -l "$3" \
		-key ruri_host "$ADDR" -key from_user peer -key from_host peer.invalid
	sipp_wait "$1" || fail "sipp $1 failed: $(tail -n 3 "$T/$1.err" 2>/dev/null)"
}

# registers NAME SOURCE N: N REGISTERs without credentials from SOURCE;
# reg_challenge expects 401, so the 503s fail calls: only the log counts.
registers() {
	uac_start_from "$2" "$1" reg_challenge -s ghost -m "$3" -r 400 -l "$3"
	sipp_wait "$1" || true
}

redis_start
registrar_config
CFG_EXTRA="$CFG_EXTRA
trusted = ( \"$ADDR\" );
rate_limit_invite = 5;
rate_limit_invite_burst = 5;
rate_limit_register = 5;
rate_limit_register_burst = 5;"
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"

# ---------------------------------------------------------------- 1. INVITE flood
invites flood "$FLOODER" $BURST
n503=$(msg_count "$T/flood.msg" recv 503)
n480=$(msg_count "$T/flood.msg" recv 480)
assert_eq $BURST $((n503 + n480)) "flood: every INVITE answered (480 or 503)"
assert_ge 5 "$n480" "flood: INVITEs within the burst answered as usual (480)"
assert_ge 20 "$n503" "flood: INVITEs over the limit refused (503)"
assert_grep "^Retry-After: 5" "$T/flood.msg" "the 503s carry Retry-After"
assert_eq "$n503" "$(stat_of rate_limited_invite)" "show stats: rate_limited_invite"
cli show stats | grep -E "^rate limited: +$n503 INVITE, 0 REGISTER$" >/dev/null ||
	fail "show stats text: $(cli show stats | grep 'rate limited')"
log "ok: show stats: $(cli show stats | grep 'rate limited')"
assert_grep "rate limits: [0-9]+ INVITE/REGISTER requests refused with 503" "$T/b2bua.log" \
	"one warning for the flood"

# ---------------------------------------------------------------- 2. another source
invites neighbour "$NEIGHBOUR" 3
assert_count "$T/neighbour.msg" recv 480 3
assert_count "$T/neighbour.msg" recv 503 0

# ---------------------------------------------------------------- 3. trusted
invites trunk "$ADDR" 20
assert_count "$T/trunk.msg" recv 404 20
assert_count "$T/trunk.msg" recv 503 0
assert_eq "$n503" "$(stat_of rate_limited_invite)" "show stats: rate_limited_invite unchanged"

# ---------------------------------------------------------------- 4. REGISTER
registers regflood "$FLOODER" $BURST
r503=$(msg_count "$T/regflood.msg" recv 503)
r401=$(msg_count "$T/regflood.msg" recv 401)
assert_eq $BURST $((r503 + r401)) "REGISTER flood: every REGISTER answered (401 or 503)"
assert_ge 5 "$r401" "REGISTER flood: within the burst challenged (401)"
assert_ge 20 "$r503" "REGISTER flood: over the limit refused (503)"
assert_eq "$r503" "$(stat_of rate_limited_register)" "show stats: rate_limited_register"
registers regneighbour "$NEIGHBOUR" 3
assert_count "$T/regneighbour.msg" recv 401 3
assert_count "$T/regneighbour.msg" recv 503 0
