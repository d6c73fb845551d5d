#!/bin/bash
#
# auth_admission — no unauthenticated path to a paid route (issue 8, item 1).
# The attack: an INVITE from an address that is not trusted, without
# credentials, From sip:anon@198.51.100.7, for sip:1555@carrier.invalid (a
# number of the static route "1" towards the trunk, a sipp UAS on $ADDR:5080).
#
#   1. with a registrar (domain $ADDR, trusted = $ADDR), default
#      untrusted_invite = "challenge": the attacker gets 407 and the trunk
#      sees nothing; the same number at our own domain (1555@$ADDR, a local
#      "user") gets 480, still nothing on the trunk; the same INVITE from
#      the trusted $ADDR goes through to the trunk;
#   2. untrusted_invite = "reject": the attacker gets 403, the trunk sees
#      nothing;
#   3. static routes only (no domain, trusted = $ADDR): the attacker gets
#      403, the trusted caller goes through;
#   4. no domain and no trusted source: a warning at start, and even the
#      test's own calls get 403.
# show stats counts the refused INVITEs (untrusted_refused).

. "$(dirname "$0")/lib.sh"

# shellcheck disable=SC2034  # read by lib.sh when it starts a sipp
SIPP_TIMEOUT=20
OTHER=$(other_addr 1)


# attack NAME [SOURCE]: the unauthenticated INVITE for the trunk's number,
# from SOURCE (default: the untrusted $OTHER); waits for it to end.
attack() {
	uac_start_from "${2:-$OTHER}" "$1" probe_invite -s 1555 -m 1 \
		-key ruri_host carrier.invalid -key from_user anon -key from_host 198.51.100.7
	sipp_wait "$1" || fail "sipp $1 failed: $(tail -n 3 "$T/$1.err" 2>/dev/null)"
}

# refused NAME CODE: run NAME got CODE and nothing else final.
refused() {
	assert_count "$T/$1.msg" recv "$2" 1
	assert_count "$T/$1.msg" recv 200 0
	assert_count "$T/$1.msg" sent ACK 1
}

# trunk_start NAME: the trunk (route "1"), ready for one call.
trunk_start() { uas_start "$1" uas_basic -m 1; }

# trunk_saw_nothing NAME: stop the trunk; it never got an INVITE.
trunk_saw_nothing() {
	_stop "${SIPP_PID[$1]}" 1
	assert_count "$T/$1.msg" recv INVITE 0
}

restart() {
	b2b_stop >/dev/null || true
	write_config
	b2b_start
}

# ---------------------------------------------------------------- 1. challenge
redis_start
registrar_config
CFG_EXTRA="$CFG_EXTRA
trusted = ( \"$ADDR\" );"
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"

trunk_start t1
attack a1
refused a1 407
chal=$(msg_header "$T/a1.msg" recv 407 Proxy-Authenticate)
[[ $chal == "Digest realm=\"$ADDR\""* ]] || fail "407 without our challenge: '$chal'"
log "ok: the attacker was challenged: $chal"

uac_start_from "$OTHER" a1local probe_invite -s 1555 -m 1 \
	-key ruri_host "$ADDR" -key from_user anon -key from_host 198.51.100.7
sipp_wait a1local || fail "sipp a1local failed"
refused a1local 480
trunk_saw_nothing t1
assert_eq 1 "$(stat_of untrusted_refused)" "show stats: untrusted_refused (the 407; a 480 is no refusal)"

trunk_start t1b
attack a1trusted "$ADDR"
uas_wait t1b
assert_count "$T/a1trusted.msg" recv 200/INVITE 1
assert_count "$T/a1trusted.msg" recv 200/BYE 1
assert_count "$T/t1b.msg" recv INVITE 1

# ---------------------------------------------------------------- 2. reject
CFG_EXTRA="$CFG_EXTRA
untrusted_invite = \"reject\";"
restart
wait_for 5 redis_up || fail "workers not connected to Redis"
trunk_start t2
attack a2
refused a2 403
trunk_saw_nothing t2
assert_eq 1 "$(stat_of untrusted_refused)" "show stats: untrusted_refused (the 403)"
# The refused attempt is in the CDRs, for fraud analysis: REFUSED, cause auth.
refused_cdr() {
	rcli --raw XRANGE b2bua:cdr - + | paste -sd' ' |
		grep -Eq 'disposition REFUSED sip_code 403 .*cause auth'
}
wait_for 5 refused_cdr || fail "no REFUSED CDR with cause auth: $(rcli --raw XRANGE b2bua:cdr - + | tr '\n' ' ' | head -c 600)"
log "ok: the 403 left a REFUSED CDR with cause auth"

# ---------------------------------------------------------------- 3. static routes only
CFG_EXTRA=""
CFG_TRUSTED="\"$ADDR\""
restart
trunk_start t3
attack a3
refused a3 403
trunk_saw_nothing t3
trunk_start t3b
attack a3trusted "$ADDR"
uas_wait t3b
assert_count "$T/a3trusted.msg" recv 200/INVITE 1
assert_count "$T/t3b.msg" recv INVITE 1
assert_eq 1 "$(stat_of untrusted_refused)" "show stats: untrusted_refused (static routes only)"
assert_no_grep "no domain and no trusted sources" "$T/b2bua.log" "no warning: trusted is set"

# ---------------------------------------------------------------- 4. nobody trusted
CFG_TRUSTED=""
restart
assert_eq 1 "$(grep -c 'no domain and no trusted sources' "$T/b2bua.log")" \
	"one warning at start: every INVITE will be refused"
trunk_start t4
attack a4 "$ADDR"
refused a4 403
trunk_saw_nothing t4
b2b_stop || fail "b2bua exited $?"
