#!/bin/bash
#
# no_enumeration — the answer to an unauthenticated request does not tell
# whether a user exists (issue 8, item 1).  Three names: alice (a
# subscriber, not registered), dave (a disabled subscriber) and ghost (no
# such user).  From an address that is not trusted, for each name:
#   - INVITE for sip:NAME@domain from a stranger (allowed: calls to local
#     users, allow_unauthenticated_to_local): 480 for all three;
#   - INVITE From sip:NAME@domain (claims to be the subscriber): 407;
#   - REGISTER of NAME without credentials: 401;
#   - OPTIONS for sip:NAME@domain: 200.
# For each kind the three answers are compared whole: status line and every
# header, once what differs by nature is masked (tags, Call-ID, Via branch
# and port, nonce, the name itself); the mean response times differ by
# less than RESPONSE_SLACK_MS.  A trusted caller, on the other hand, is
# told the truth (404 for ghost), which shows that the uniform answer comes
# from the policy and not from a broken lookup.

. "$(dirname "$0")/lib.sh"

# shellcheck disable=SC2034  # read by lib.sh when it starts a sipp
SIPP_TIMEOUT=20
OTHER=$(other_addr 1)
NAMES="alice dave ghost"
RESPONSE_SLACK_MS=${RESPONSE_SLACK_MS:-100}
REQUESTS=3   # per name and kind


# final_answers LOG NAME: every final response received in LOG, headers in
# order, with what differs by nature masked; one blank line between them.
final_answers() {
	awk '
	/^-----------------------------------------------/ { inmsg = 0; next }
	/^[A-Z]+ message received/ { inmsg = 1; first = 1; keep = 0; next }
	/^[A-Z]+ message sent/ { inmsg = 0; next }
	!inmsg { next }
	{ sub(/\r$/, "") }
	first { if (NF == 0) next; first = 0; keep = ($1 == "SIP/2.0" && $2 >= 200) }
	keep && NF == 0 { print ""; keep = 0; next }
	keep { print }
	' "$1" | sed -E \
		-e "s/\\b$2\\b/NAME/g" \
		-e 's/(tag|branch|rport|received)=[^;>, ]+/\1=X/g' \
		-e 's/nonce="[^"]*"/nonce="X"/g' \
		-e 's/^(Call-ID|i):.*/\1: X/' \
		-e "s/$OTHER:[0-9]+/$OTHER:PORT/g"
}

# response_ms RUN: sipp's mean response time (ms) of a run, from -trace_stat.
response_ms() {
	sipp_stat "$1" 'ResponseTime1(C)' | awk -F: '{ printf "%d\n", $1 * 3600000 + $2 * 60000 + $3 * 1000 + $4 / 1000 }'
}

# probe KIND NAME: REQUESTS requests of KIND about NAME from $OTHER.
probe() {
	local kind=$1 name=$2 run="$1-$2"
	case $kind in
	invite_to)
		uac_start_from "$OTHER" "$run" probe_invite -s "$name" -m $REQUESTS \
			-key ruri_host "$ADDR" -key from_user peer -key from_host peer.invalid ;;
	invite_from)
		uac_start_from "$OTHER" "$run" probe_invite -s 1555 -m $REQUESTS \
			-key ruri_host carrier.invalid -key from_user "$name" -key from_host "$ADDR" ;;
	register)
		uac_start_from "$OTHER" "$run" reg_challenge -s "$name" -m $REQUESTS ;;
	options)
		uac_start_from "$OTHER" "$run" probe_options -s "$name" -m $REQUESTS ;;
	esac
	sipp_wait "$run" || fail "sipp $run failed: $(tail -n 3 "$T/$run.err" 2>/dev/null)"
	final_answers "$T/$run.msg" "$name" >"$T/$run.answers"
}

# same_answers KIND CODE: every name got CODE REQUESTS times for KIND, and
# the same answers (masked) in similar time.
same_answers() {
	local kind=$1 code=$2 name ref ms ref_ms
	ref="$T/$kind-alice.answers"
	ref_ms=$(response_ms "$kind-alice")
	for name in $NAMES; do
		assert_eq "$REQUESTS" "$(grep -c "^SIP/2.0 $code " "$T/$kind-$name.answers")" \
			"$kind $name: $code answers"
		[ "$(grep -c '^SIP/2.0' "$T/$kind-$name.answers")" = "$REQUESTS" ] ||
			fail "$kind $name: other final answers: $(grep '^SIP/2.0' "$T/$kind-$name.answers" | sort -u | xargs)"
		cmp -s "$ref" "$T/$kind-$name.answers" ||
			fail "$kind: the answers about $name differ from alice's: $(diff "$ref" "$T/$kind-$name.answers" | head -n 6)"
		ms=$(response_ms "$kind-$name")
		[ $((ms > ref_ms ? ms - ref_ms : ref_ms - ms)) -lt "$RESPONSE_SLACK_MS" ] ||
			fail "$kind: mean response time about $name $ms ms, about alice $ref_ms ms"
		log "ok: $kind $name: $REQUESTS x $code, same headers as for alice, $ms ms (alice $ref_ms ms)"
	done
}

redis_start
registrar_config
CFG_EXTRA="$CFG_EXTRA
trusted = ( \"$ADDR\" );"
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"
add_user alice alicepw
add_user dave davepw
out=$(cli user disable dave 2>&1) || fail "user disable dave: $out"
log "$out"

for kind in invite_to invite_from register options; do
	for name in $NAMES; do
		probe "$kind" "$name"
	done
done
same_answers invite_to 480
same_answers invite_from 407
same_answers register 401
same_answers options 200
log "answers to an INVITE about a name, as one example:"
sed -n '1,/^$/p' "$T/invite_to-ghost.answers" >&2

# A trusted caller (a trunk) is told the truth.
uac_start trusted probe_invite -s ghost -m 1 -key ruri_host "$ADDR" \
	-key from_user peer -key from_host peer.invalid
sipp_wait trusted || fail "sipp trusted failed"
assert_count "$T/trusted.msg" recv 404 1
