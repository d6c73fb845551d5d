#!/bin/bash
#
# invite_auth — call flow 3, step 1: a caller who is a local subscriber (From
# host = our domain, source not trusted) must authenticate its INVITE.
#
#   - the first INVITE gets 100 then 407 with one Proxy-Authenticate (MD5
#     here, auth_algorithms = [ "MD5" ]), acknowledged in its transaction, and
#     nothing reaches the callee;
#   - the INVITE again with Proxy-Authorization (alice's password): the call
#     goes through to bob's registered UA (180, 200, ACK, BYE);
#   - that call's Proxy-Authorization replayed verbatim in a new call (same
#     nonce, same nonce-count, as an attacker on the path would): 407 with a
#     fresh challenge, no B-leg INVITE, and Redis holds the claimed
#     nonce-count key;
#   - a wrong password: 407 again, no B-leg INVITE;
#   - credentials of alice in an INVITE From bob: 403, no B-leg INVITE.

. "$(dirname "$0")/lib.sh"

PREFIX=b2bua:


# caller NAME FROM-USER AUTH-USER PASSWORD: uac_auth towards bob.
caller() {
	uac_run "$1" uac_auth -s bob -m 1 -key from "$2" -au "$3" -ap "$4" \
		-auth_uri "bob@$ADDR:$SIP_PORT"
}

# branches LOG METHOD: the distinct top-Via branches of METHOD sent in LOG.
branches() { msg_header "$T/$1" sent "$2" Via | grep -o 'branch=[^;]*' | uniq | xargs; }

redis_start
registrar_config
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"
add_user alice secret
add_user bob bobpw

uac_run rb reg_auth -p "$UAS_PORT" -s bob -ap bobpw -m 1 -key exp_hdr "Expires: 3600" \
	-key cparams ""
assert_count "$T/rb.msg" recv 200 1
uas_start uas uas_basic -m 1

# ---------------------------------------------------------------- 407, then the call
caller ok alice alice secret
uas_wait uas
assert_count "$T/ok.msg" sent INVITE 2
assert_count "$T/ok.msg" recv 100 2
assert_count "$T/ok.msg" recv 407 1
assert_count "$T/ok.msg" recv 200/INVITE 1
assert_count "$T/ok.msg" sent ACK 2
assert_count "$T/ok.msg" recv 200/BYE 1
chal=$(msg_header "$T/ok.msg" recv 407 Proxy-Authenticate)
re_chal="^Digest realm=\"$ADDR\", nonce=\"[A-Za-z0-9_-]{56}\", qop=\"auth\", algorithm=MD5\$"
[[ $chal =~ $re_chal ]] || fail "407 challenge: '$chal' !~ /$re_chal/"
log "ok: 407 Proxy-Authenticate: $chal"
auth=$(msg_header "$T/ok.msg" sent INVITE Proxy-Authorization)
[[ $auth == "Digest username=\"alice\""* && $auth == *"uri=\"sip:bob@$ADDR:$SIP_PORT\""* ]] ||
	fail "second INVITE's Proxy-Authorization: '$auth'"
log "ok: the second INVITE carried Proxy-Authorization for alice"
# The 407's ACK is in the first INVITE's transaction (same branch).
inv_branch=$(msg_header "$T/ok.msg" sent INVITE Via | head -n 1 | grep -o 'branch=[^;]*')
ack_branch=$(msg_header "$T/ok.msg" sent ACK Via | head -n 1 | grep -o 'branch=[^;]*')
assert_eq "$inv_branch" "$ack_branch" "the 407 was acknowledged in the INVITE's transaction"
assert_count "$T/uas.msg" recv INVITE 1
assert_count "$T/uas.msg" recv ACK 1
assert_count "$T/uas.msg" recv BYE 1
assert_no_leak "$T/ok.msg" "$T/uas.msg"
assert_eq "" "$(msg_header "$T/uas.msg" recv INVITE Proxy-Authorization)" \
	"the caller's credentials did not cross to the B-leg"

# ---------------------------------------------------------------- refusals: replay, password, From
# bob's UA again, to show that nothing reaches it.
uas_start uas2 uas_basic -m 1

# The accepted Proxy-Authorization replayed in a new call: the signature is
# still valid (same method, uri and From user, fresh nonce), so only the
# nonce-count claim in Redis can refuse it.
auth=$(msg_header "$T/ok.msg" sent INVITE Proxy-Authorization | sort -u)
assert_eq 1 "$(printf '%s\n' "$auth" | wc -l)" "one Proxy-Authorization to replay"
nonce=$(printf '%s' "$auth" | sed -n 's/.*nonce="\([^"]*\)".*/\1/p')
[[ -n $nonce && $auth == *nc=00000001* ]] || fail "cannot replay '$auth'"
uac_run replay uac_auth_replay -s bob -m 1 -key from alice \
	-key auth_line "Proxy-Authorization: $auth"
assert_eq "$auth" "$(msg_header "$T/replay.msg" sent INVITE Proxy-Authorization | sort -u)" \
	"the replay carried the accepted Proxy-Authorization verbatim"
[ "$(call_ids "$T/replay.msg" sent)" != "$(call_ids "$T/ok.msg" sent)" ] ||
	fail "the replay reused the original Call-ID"
assert_count "$T/replay.msg" recv 407 1
assert_count "$T/replay.msg" recv 200 0
assert_count "$T/replay.msg" sent ACK 1
assert_eq "$(branches replay.msg INVITE)" "$(branches replay.msg ACK)" \
	"the replay's 407 acknowledged in its INVITE's transaction"
rechal=$(msg_header "$T/replay.msg" recv 407 Proxy-Authenticate | sort -u)
[[ $rechal =~ $re_chal && $rechal != *"nonce=\"$nonce\""* ]] ||
	fail "replay: 407 is not a fresh challenge: '$rechal'"
log "ok: the replay got a fresh challenge"
# bob's UA took the first call's INVITE (uas.msg, above) and none since.
assert_count "$T/uas2.msg" recv INVITE 0
assert_grep "INVITE from $ADDR:[0-9]+: nonce-count of 'alice' reused \\(replay refused\\)" \
	"$T/b2bua.log" "log: INVITE replay refused"
assert_eq 1 "$(rcli EXISTS "${PREFIX}nc:$nonce:00000001")" "Redis: the call's nonce-count claimed"
ttl=$(rcli TTL "${PREFIX}nc:$nonce:00000001")
[ "$ttl" -gt 0 ] && [ "$ttl" -le 300 ] || fail "nonce-count key TTL $ttl (nonce_ttl 300)"

caller wrong alice alice not-the-password
assert_count "$T/wrong.msg" sent INVITE 2
assert_count "$T/wrong.msg" recv 407 2
assert_count "$T/wrong.msg" recv 200 0
assert_count "$T/wrong.msg" sent ACK 2
assert_eq "$(branches wrong.msg INVITE)" "$(branches wrong.msg ACK)" \
	"both 407s acknowledged in their INVITE's transaction"
assert_grep "authentication of 'alice' from $ADDR:[0-9]+ failed" "$T/b2bua.log" \
	"log: wrong password"

caller spoof bob alice secret
assert_count "$T/spoof.msg" recv 407 1
assert_count "$T/spoof.msg" recv 403 1
assert_count "$T/spoof.msg" recv 200 0
assert_count "$T/spoof.msg" sent ACK 2
assert_grep "authenticated as 'alice' but From user is 'bob'" "$T/b2bua.log" \
	"log: From user differs from the authenticated user"

assert_count "$T/uas2.msg" recv INVITE 0
assert_no_grep "(error|crit)" "$T/b2bua.log" "no errors in the daemon's log"
log "PASS"
