#!/bin/bash
#
# multihost_basic — three b2bua hosts sharing one Redis serve one domain as
# one system (issue 10, item 5: register via one host, call via another;
# one CDR stream with every host's CDRs exactly once).
#
#   1. alice registers through host1; a trusted caller sends its INVITE to
#      host2 and reaches alice's registered Contact; the caller hangs up.
#   2. the other way: bob registers through host2 and is called via host1.
#   3. host3, which saw neither REGISTER, shows both bindings (`user show
#      --json`) with the host that received each (host1, host2).
#   4. $CALLS_PER_HOST calls through each host to carol (registered through
#      host3): the shared CDR stream then holds every call exactly once —
#      per `host` field the number of calls that host carried, unique `id`s,
#      and each host's `a_call_id`s are exactly the Call-IDs its sipp caller
#      sent — and each host's `show stats` counts the same calls.
# Every sipp UA sends to one host's address while its URIs name the domain
# ($ADDR), as a phone whose DNS SRV lookup chose that host.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/multihost_lib.sh"

HOSTS=3
CALLS_PER_HOST=10
ALICE_PORT=5081
BOB_PORT=5082
CAROL_PORT=5083

# call_through HOST NAME USER PORT: one call to USER through HOST; USER's UA
# answers as a sipp UAS on $ADDR:PORT (where it registered from).
call_through() {
	local host=$1 name=$2 user=$3 port=$4
	uas_start "$name-uas" uas_basic -p "$port" -m 1
	mh_uac_run "$host" "$name" uac_basic -s "$user" -m 1
	uas_wait "$name-uas"
	assert_sipp_ok "$name" 1
	assert_sipp_ok "$name-uas" 1
	assert_count "$T/$name.msg" recv 200/INVITE 1
	assert_count "$T/$name.msg" recv 200/BYE 1
	assert_count "$T/$name-uas.msg" recv INVITE 1
	assert_count "$T/$name-uas.msg" recv BYE 1
	assert_eq "INVITE sip:$user@$ADDR:$port SIP/2.0" \
		"$(grep -a -m1 '^INVITE ' "$T/$name-uas.msg" | tr -d '\r')" \
		"$name: the B-leg INVITE went to $user's registered Contact"
	assert_eq "$(mh_addr "$host")" \
		"$(msg_header "$T/$name-uas.msg" recv INVITE Via | head -n 1 | sed -E 's/^SIP\/2\.0\/UDP ([^:;]+).*/\1/')" \
		"$name: the B-leg came from host $host"
}

# binding_host HOST USER: the `host` of USER's only binding, as HOST's CLI
# shows it.
binding_host() {
	local out
	out=$(mh_cli "$1" user show "$2" --json) || fail "host $1: user show $2 failed"
	printf '%s' "$out" | jq -r '[.. | objects | select(has("contact"))] |
		if length == 1 then .[0].host else "bindings: \(length)" end'
}

cdr_count() { mh_cdrs | wc -l; }
cdrs_at_least() { [ "$(cdr_count)" -ge "$1" ]; }

mh_redis_start
mh_start_all "$HOSTS"
wait_for 5 mh_all_redis_up "$HOSTS" || fail "not every host's workers connected to Redis"
mh_add_user alice alicepw
mh_add_user bob bobpw
mh_add_user carol carolpw

# ---------------------------------------------------------------- 1, 2
mh_register 1 ra alice alicepw "$ALICE_PORT"
call_through 2 c21 alice "$ALICE_PORT"
mh_register 2 rb bob bobpw "$BOB_PORT"
call_through 1 c12 bob "$BOB_PORT"

# ---------------------------------------------------------------- 3
assert_eq host1 "$(binding_host 3 alice)" "host3 sees alice's binding, received by host1"
assert_eq host2 "$(binding_host 3 bob)" "host3 sees bob's binding, received by host2"
assert_eq "$ADDR:$ALICE_PORT" "$(mh_cli 3 user show alice --json |
	jq -r '[.. | objects | select(has("contact"))][0].source')" "alice's binding: its source"

# ---------------------------------------------------------------- 4
mh_register 3 rc carol carolpw "$CAROL_PORT"
wait_for 10 cdrs_at_least 2 || fail "the two first calls' CDRs are not in the stream"
total=$((HOSTS * CALLS_PER_HOST))
uas_start carol-uas uas_basic -p "$CAROL_PORT" -m "$total"
for ((h = 1; h <= HOSTS; h++)); do
	mh_uac_start "$h" "load$h" uac_basic -s carol -m "$CALLS_PER_HOST" -r 10
done
for ((h = 1; h <= HOSTS; h++)); do
	sipp_wait "load$h" || fail "sipp load$h exited $? ($(sipp_stat "load$h" 'FailedCall(C)') failed)"
	assert_sipp_ok "load$h" "$CALLS_PER_HOST"
done
uas_wait carol-uas
assert_sipp_ok carol-uas "$total"

expected=$((total + 2))
wait_for 10 cdrs_at_least "$expected" ||
	fail "CDR stream: $(cdr_count) entries, expected $expected"
mh_cdrs >"$T/cdrs.jsonl"
assert_eq "$expected" "$(wc -l <"$T/cdrs.jsonl")" "CDRs in the one stream"
assert_eq "$expected" "$(jq -r .id "$T/cdrs.jsonl" | sort -u | wc -l)" "distinct CDR ids"
assert_eq "$expected" "$(jq -r .a_call_id "$T/cdrs.jsonl" | sort -u | wc -l)" "distinct a_call_ids"
assert_eq "$expected" "$(jq -r 'select(.disposition == "ANSWERED") | .id' "$T/cdrs.jsonl" | wc -l)" \
	"every CDR is an answered call"
# per host: the earlier call it carried (host1: c12, host2: c21) plus its load run.
for ((h = 1; h <= HOSTS; h++)); do
	call_ids "$T/load$h.msg" sent >"$T/sent$h"
	case $h in
	1) call_ids "$T/c12.msg" sent >>"$T/sent$h" ;;
	2) call_ids "$T/c21.msg" sent >>"$T/sent$h" ;;
	esac
	sort -o "$T/sent$h" "$T/sent$h"
	jq -r --arg h "host$h" 'select(.host == $h) | .a_call_id' "$T/cdrs.jsonl" | sort >"$T/cdr$h"
	n=$(wc -l <"$T/sent$h")
	assert_eq "$n" "$(wc -l <"$T/cdr$h")" "CDRs with host = host$h"
	assert_eq "$(cat "$T/sent$h")" "$(cat "$T/cdr$h")" \
		"host$h's CDRs: exactly the Call-IDs its caller sent"
	assert_eq "$n" "$(mh_stat "$h" calls_answered)" "host $h: show stats calls_answered"
	assert_eq "$n" "$(mh_stat "$h" calls_total)" "host $h: show stats calls_total"
	assert_eq 0 "$(mh_stat "$h" calls_failed)" "host $h: show stats calls_failed"
	assert_eq "host$h" "$(mh_stat "$h" node_id)" "host $h: show stats node_id"
done
assert_eq 0 "$(jq -r 'select(.host | test("^host[1-3]$") | not) | .id' "$T/cdrs.jsonl" | wc -l)" \
	"no CDR from another host"

for ((h = 1; h <= HOSTS; h++)); do
	assert_no_grep "(error|crit)" "$(mh_log "$h")" "no errors in host $h's log"
	mh_stop "$h" || fail "host $h: b2bua exited $? on SIGTERM"
done
log "PASS"
