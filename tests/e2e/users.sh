#!/bin/bash
#
# users — subscriber management with b2bua-cli against the real daemon and a
# private Redis (the operator's side of call flow 1).
#
# `user add alice` without a password makes one up and prints it; Redis then
# holds alice's HA1s for the realm (the domain, $ADDR) and never the
# password, which is in no log either.  A real REGISTER (sipp) with the
# printed password is accepted, and `user show alice --json` lists that
# registration as the registrar stored it; `user list` counts it.  A
# disabled user is refused; `user del` removes the user and its
# registrations.  With Redis gone the CLI says so and exits 1.

. "$(dirname "$0")/lib.sh"

PREFIX="e2e:"

redis_start
# write_config already points redis_address at $REDIS_SOCK.
CFG_EXTRA="domain = \"$ADDR\";
redis_prefix = \"$PREFIX\";
auth_secret = \"e2e-users-0123456789\";
auth_algorithms = [ \"MD5\" ];"
b2b_start

# md5/sha256 of user:realm:password, as Redis must hold them.
ha1() { printf '%s' "$2:$ADDR:$3" | "$1" | cut -d' ' -f1; }

# register NAME USER PASSWORD: one REGISTER with digest, run to its final answer.
register() {
	uac_run "$1" reg_auth -m 1 -s "$2" -ap "$3" -key exp_hdr "Expires: 300" -key cparams ";q=1"
}

# ------------------------------------------------------------ add, random password

out=$(cli user add alice --display "Alice Liddell" --max-calls 2) ||
	fail "user add alice exited $?: $out"
[[ $out =~ ^user\ alice\ added\;\ password:\ ([A-Za-z0-9]{16})$ ]] ||
	fail "user add alice printed: '$out'"
PW=${BASH_REMATCH[1]}
log "ok: user add alice printed a 16-character password"

assert_eq "$(ha1 md5sum alice "$PW")" "$(rcli hget "${PREFIX}user:alice" ha1_md5)" "ha1_md5"
assert_eq "$(ha1 sha256sum alice "$PW")" "$(rcli hget "${PREFIX}user:alice" ha1_sha256)" \
	"ha1_sha256"
assert_eq 1 "$(rcli hget "${PREFIX}user:alice" enabled)" "enabled"
assert_eq 2 "$(rcli hget "${PREFIX}user:alice" max_calls)" "max_calls"
rcli hgetall "${PREFIX}user:alice" >"$T/alice.hash"
assert_no_grep "$PW" "$T/alice.hash" "the password is not stored"
assert_no_grep password "$T/alice.hash" "no password field"

out=$(cli user add alice --password other 2>&1) && fail "a second user add alice succeeded"
assert_eq "b2bua-cli: user alice exists" "$out" "second add refused"

# bob's password comes from stdin and has a space in it.
out=$(printf 'bob pass 1\n' | cli user add bob --password-stdin) || fail "user add bob: $out"
assert_eq "user bob added" "$out" "user add bob --password-stdin"
assert_eq "$(ha1 md5sum bob 'bob pass 1')" "$(rcli hget "${PREFIX}user:bob" ha1_md5)" \
	"bob's ha1_md5"

# ------------------------------------------------------------ show, with a real registration

cli user show alice --json >"$T/show0.json" || fail "user show alice --json failed"
assert_eq alice "$(jq -r .user "$T/show0.json")" "show: user"
assert_eq "Alice Liddell" "$(jq -r .display "$T/show0.json")" "show: display"
assert_eq true "$(jq -r .enabled "$T/show0.json")" "show: enabled"
assert_eq 2 "$(jq -r .max_calls "$T/show0.json")" "show: max_calls"
assert_eq 0 "$(jq '.registrations | length' "$T/show0.json")" "show: no registrations yet"

register reg_alice alice "$PW"
assert_count "$T/reg_alice.msg" recv 200 1

cli user show alice --json >"$T/show1.json" || fail "user show alice --json failed"
assert_eq 1 "$(jq '.registrations | length' "$T/show1.json")" "show: one registration"
assert_eq sipp-reg_auth "$(jq -r '.registrations[0].user_agent' "$T/show1.json")" \
	"show: the registration's user agent"
assert_eq 1 "$(jq --arg a "$ADDR" '[.registrations[] | select(.contact | contains($a))
	| select(.source | startswith($a))] | length' "$T/show1.json")" \
	"show: contact and source are the sipp's address"
assert_eq 1 "$(jq '[.registrations[] | select(.expires_in_s > 250 and .expires_in_s <= 300)]
	| length' "$T/show1.json")" "show: expires in about 300 s"
cli user show alice >"$T/show1.txt" || fail "user show alice failed"
assert_grep '^registrations: +1$' "$T/show1.txt" "show text: one registration"
assert_grep 'user agent "sipp-reg_auth"' "$T/show1.txt" "show text: user agent"

# ------------------------------------------------------------ list

cli user list >"$T/list.txt" || fail "user list failed"
assert_grep '^alice +yes +2 +1 +Alice Liddell$' "$T/list.txt" "list: alice, 1 registration"
assert_grep '^bob +yes +unlimited +0 +-$' "$T/list.txt" "list: bob"
assert_grep '^2 users$' "$T/list.txt" "list: count"
cli user list --json >"$T/list.json" || fail "user list --json failed"
assert_eq "alice bob" "$(jq -r '[.[].user] | join(" ")' "$T/list.json")" "list --json: users"
assert_eq 1 "$(jq '.[] | select(.user == "alice") | .registrations' "$T/list.json")" \
	"list --json: alice's registrations"

# ------------------------------------------------------------ disable, passwd, del

cli user disable alice >/dev/null || fail "user disable alice failed"
register reg_disabled alice "$PW"
assert_count "$T/reg_disabled.msg" recv 200 0
assert_count "$T/reg_disabled.msg" recv 403 1
assert_eq false "$(cli user list --json | jq '.[] | select(.user == "alice") | .enabled')" \
	"list --json: alice disabled"
cli user enable alice >/dev/null || fail "user enable alice failed"

out=$(cli user passwd alice) || fail "user passwd alice: $out"
[[ $out =~ ^user\ alice\ password\ changed\;\ password:\ ([A-Za-z0-9]{16})$ ]] ||
	fail "user passwd alice printed: '$out'"
PW2=${BASH_REMATCH[1]}
[ "$PW2" != "$PW" ] || fail "user passwd made up the same password"
assert_eq "$(ha1 md5sum alice "$PW2")" "$(rcli hget "${PREFIX}user:alice" ha1_md5)" \
	"ha1_md5 after passwd"
register reg_new_pw alice "$PW2"
assert_count "$T/reg_new_pw.msg" recv 200 1

out=$(cli user del alice) || fail "user del alice: $out"
assert_eq "user alice deleted" "$out" "user del alice"
assert_eq 0 "$(rcli exists "${PREFIX}user:alice" "${PREFIX}loc:alice")" "alice's keys removed"
out=$(cli user show alice 2>&1)
assert_eq 1 "$?" "user show of a deleted user: exit status"
assert_eq "b2bua-cli: no such user alice" "$out" "user show of a deleted user"

# Neither password reached the daemon's log.
assert_no_grep "$PW|$PW2|bob pass 1" "$T/b2bua.log" "no password in the daemon's log"

# ------------------------------------------------------------ Redis down

_stop "$REDIS_PID"
out=$(cli user list 2>&1)
assert_eq 1 "$?" "user list with Redis down: exit status"
case $out in
"b2bua-cli: redis unix:$REDIS_SOCK: cannot connect: "*) log "ok: $out" ;;
*) fail "user list with Redis down said: '$out'" ;;
esac
cli show stats >/dev/null || fail "show stats failed with Redis down"

b2b_stop || fail "b2bua exited with status $? on SIGTERM"
log "PASS"
