#!/bin/bash
#
# metrics — the Prometheus endpoint (docs/metrics.md), scraped with curl.
#
#   - Off by default: with no metrics_address nothing listens (curl gets
#     "connection refused").
#   - With metrics_address on the test's loopback address: /metrics answers
#     200 with the 0.0.4 text Content-Type, another path 404, POST 405.
#   - Scraped before, during and after known traffic: 2 registrations
#     accepted, 1 removed, 1 wrong password; 5 calls answered and held
#     for a while (scraped while they are up: 5 ANSWERED), then 3 answered
#     486 Busy Here.  The counters move by exactly those numbers: final
#     codes 200 and 486, calls answered/failed, the set-up histogram's
#     _count (8) and its +Inf bucket, CDRs written (8), registrations, auth
#     failures; every worker's Redis is up and its round trips counted.
#   - Docs and code agree: every metric named in docs/metrics.md's tables
#     has a sample in the scrape, and every family the scrape announces is
#     in those tables.
#   - A scraper that sends half a request and waits blocks neither the CLI
#     nor another scrape (both share the management process's loop).
#   - A Redis outage: redis_up 0 on every worker, a failed call's CDR in
#     the spool (b2bua_cdr_spooled 1); Redis back: redis_up 1, the spool
#     drained, b2bua_cdr_replayed_total moved by exactly 1.

. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null 2>&1 || skip "curl not found (Debian package curl)"

MPORT=9464
URL=http://$ADDR:$MPORT
DOC=$top_srcdir/docs/metrics.md

# scrape FILE: GET /metrics into $T/FILE, failing the test on any error.
scrape() {
	curl -sS --max-time 5 -o "$T/$1" "$URL/metrics" || fail "scrape $1: curl failed"
}

# sample FILE SERIES: the value of the sample line SERIES (name and
# labels, as written), 0 when the scrape has no such line.
sample() {
	awk -v k="$2" '$1 == k { v = $2 } END { print (v == "" ? 0 : v) }' "$T/$1"
}

# assert_delta BEFORE AFTER SERIES N: SERIES moved by exactly N.
assert_delta() {
	local a b
	a=$(sample "$1" "$3")
	b=$(sample "$2" "$3")
	assert_eq "$4" "$((b - a))" "delta of $3"
}

active_answered() {
	scrape during
	[ "$(sample during 'b2bua_calls_active{state="ANSWERED"}')" = 5 ]
}

redis_start
registrar_config
CFG_EXTRA="$CFG_EXTRA
trusted = ( \"$ADDR\" );"

# ---------------------------------------------------------------- off by default
write_config
assert_no_grep "metrics_address" "$CONF" "the config does not set metrics_address"
b2b_start
curl -sS --max-time 5 -o /dev/null "$URL/metrics" 2>"$T/curl-off.err"
rc=$?
assert_eq 7 "$rc" "metrics off by default: curl's 'connection refused' exit code"
b2b_stop || fail "b2bua did not stop cleanly"

# ---------------------------------------------------------------- on
CFG_EXTRA="$CFG_EXTRA
metrics_address = \"$ADDR:$MPORT\";"
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"
assert_grep "metrics: serving $URL/metrics" "$T/b2bua.log" "log: the endpoint is served"
add_user bob bobpw
add_user carol carolpw

assert_eq "200 text/plain; version=0.0.4; charset=utf-8" \
	"$(curl -sS --max-time 5 -o /dev/null -w '%{http_code} %{content_type}' "$URL/metrics")" \
	"/metrics: status and Content-Type"
assert_eq 404 "$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "$URL/other")" \
	"another path: 404"
assert_eq 405 "$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -X POST "$URL/metrics")" \
	"POST: 405"
scrape before

# ---------------------------------------------------------------- registrations
uac_run rb reg_auth -p "$UAS_PORT" -s bob -ap bobpw -m 1 -key exp_hdr "Expires: 3600" \
	-key cparams ""
uac_run rc1 reg_auth -p 5201 -s carol -ap carolpw -m 1 -key exp_hdr "Expires: 3600" \
	-key cparams ""
uac_run rc2 reg_auth -p 5201 -s carol -ap carolpw -m 1 -key exp_hdr "Expires: 0" \
	-key cparams ""
uac_run rw reg_auth -p 5202 -s carol -ap wrong -m 1 -key exp_hdr "Expires: 3600" \
	-key cparams ""
assert_count "$T/rc2.msg" recv 200 1
assert_count "$T/rw.msg" recv 200 0

# ---------------------------------------------------------------- 5 answered calls, scraped while up
uas_start uas uas_basic -m 5
uac_start uac uac_basic -s bob -m 5 -r 10 -l 5 -d 4000
wait_for 10 active_answered ||
	fail "not 5 ANSWERED calls in the scrape: $(grep 'b2bua_calls_active{' "$T/during")"
log "ok: scraped during the calls: $(grep -c '^b2bua_' "$T/during") samples, 5 ANSWERED"
sipp_wait uac || fail "sipp uac failed"
uas_wait uas
assert_sipp_ok uac 5

# ---------------------------------------------------------------- 3 busy
uas_start uasb uas_busy -m 3
uac_run uacb uac_busy -s bob -m 3 -r 10
uas_wait uasb
assert_sipp_ok uacb 3

calls_gone() { [ "$(stat_of calls_active)" = 0 ]; }
wait_for 5 calls_gone || fail "calls_active still $(stat_of calls_active)"
# CDRs are written when a call's slot goes; the traffic counters on the 1 s tick.
cdrs_in() { scrape after; [ "$(sample after b2bua_cdr_written_total)" -ge 8 ]; }
wait_for 5 cdrs_in || fail "b2bua_cdr_written_total: $(sample after b2bua_cdr_written_total)"
sleep 1.2
scrape after

# ---------------------------------------------------------------- exact deltas
assert_delta before after 'b2bua_final_codes_total{code="200"}' 5
assert_delta before after 'b2bua_final_codes_total{code="486"}' 3
assert_delta before after b2bua_calls_total 8
assert_delta before after b2bua_calls_answered_total 5
assert_delta before after b2bua_calls_failed_total 3
assert_delta before after b2bua_call_setup_seconds_count 8
assert_delta before after 'b2bua_call_setup_seconds_bucket{le="+Inf"}' 8
assert_delta before after b2bua_cdr_written_total 8
assert_delta before after b2bua_registrations_accepted_total 2
assert_delta before after b2bua_registrations_removed_total 1
assert_delta before after b2bua_auth_failures_total 1
assert_eq 0 "$(sample after 'b2bua_calls_active{state="ANSWERED"}')" "no call active after"
assert_eq 0 "$(sample after b2bua_cdr_spooled)" "no CDR waiting for Redis"
for w in $(seq 0 $((CFG_WORKERS - 1))); do
	assert_eq 1 "$(sample after "b2bua_redis_up{worker=\"$w\"}")" "worker $w: redis up"
	assert_eq 1 "$(sample after "b2bua_worker_up{worker=\"$w\"}")" "worker $w: up"
	assert_ge 1 "$(sample after "b2bua_event_loop_lag_seconds_count{worker=\"$w\"}")" \
		"worker $w: loop lag observed"
done
rtt=0
msgs=0
for w in $(seq 0 $((CFG_WORKERS - 1))); do
	rtt=$((rtt + $(sample after "b2bua_redis_command_seconds_count{worker=\"$w\"}")))
	msgs=$((msgs + $(sample after "b2bua_sip_messages_received_total{worker=\"$w\"}")))
done
assert_ge 8 "$rtt" "Redis round trips counted (a lookup per call at least)"
assert_ge $((8 * 3)) "$msgs" "SIP messages received"
# The set-up histogram's buckets never go down as le grows.
awk -F'[ ]' '/^b2bua_call_setup_seconds_bucket/ { if ($2 < prev) bad = 1; prev = $2 }
	END { exit bad }' "$T/after" || fail "set-up buckets not cumulative"

# ---------------------------------------------------------------- docs and code agree
doc_names=$(grep -o '^| `b2bua_[a-z0-9_]*`' "$DOC" | tr -d '|` ' | sort -u)
[ "$(printf '%s\n' "$doc_names" | wc -l)" -ge 20 ] ||
	fail "docs/metrics.md: only $(printf '%s\n' "$doc_names" | wc -l) metrics found in its tables"
for name in $doc_names; do
	grep -Eq "^${name}(_bucket|_sum|_count)?[{ ]" "$T/after" ||
		fail "documented metric $name has no sample in the scrape"
done
log "ok: all $(printf '%s\n' "$doc_names" | wc -l) documented metrics have samples"
for name in $(awk '$1 == "#" && $2 == "TYPE" { print $3 }' "$T/after"); do
	printf '%s\n' "$doc_names" | grep -qx "$name" ||
		fail "metric $name is served but not documented in docs/metrics.md"
done
log "ok: every family served is documented"

# ---------------------------------------------------------------- a stuck scraper blocks nothing
# A client that sends half a request and waits: the CLI and other scrapes go on.
exec 3<>"/dev/tcp/$ADDR/$MPORT" || fail "cannot connect to $URL"
printf 'GET /metr' >&3
start=$(date +%s%N)
assert_eq 0 "$(stat_of calls_active)" "CLI answers while a scraper is stuck"
scrape stuck
took=$((($(date +%s%N) - start) / 1000000))
# Blocked, they would wait for the stuck connection's 10 s timeout (curl gives up at 5 s).
[ "$took" -lt 5000 ] || fail "CLI and scrape took $took ms beside a stuck scraper"
log "ok: CLI and a scrape beside a stuck scraper: $took ms"
exec 3>&-

# ---------------------------------------------------------------- a Redis outage
# Redis goes: every worker's redis_up drops to 0.  A call to bob then fails
# (no location service) and its CDR waits in the spool; Redis comes back:
# redis_up is 1 again and the drain counts that CDR as replayed.
scrape o0
log "killing redis-server (pid $REDIS_PID)"
_stop "$REDIS_PID"
redis_down() {
	scrape o1
	[ "$(grep -c '^b2bua_redis_up{worker="[0-9]*"} 0$' "$T/o1")" = "$CFG_WORKERS" ]
}
wait_for 5 redis_down || fail "redis_up: $(grep '^b2bua_redis_up' "$T/o1" | tr '\n' ' ')"
log "ok: every worker's redis_up is 0"
uac_run uo uac_expect_code -s bob -m 1 -key maxfwd 70 -key extra_hdr "X-Test: none"
assert_count "$T/uo.msg" recv 200 0
one_spooled() { scrape o2; [ "$(sample o2 b2bua_cdr_spooled)" = 1 ]; }
wait_for 5 one_spooled || fail "b2bua_cdr_spooled: $(sample o2 b2bua_cdr_spooled)"
log "ok: the call's CDR waits in the spool"
redis_start
replayed() {
	scrape o3
	[ "$(grep -c '^b2bua_redis_up{worker="[0-9]*"} 1$' "$T/o3")" = "$CFG_WORKERS" ] &&
		[ "$(sample o3 b2bua_cdr_spooled)" = 0 ] &&
		[ "$(sample o3 b2bua_cdr_replayed_total)" != "$(sample o0 b2bua_cdr_replayed_total)" ]
}
wait_for 15 replayed || fail "after Redis came back: $(grep -E '^b2bua_(redis_up|cdr_)' "$T/o3")"
assert_delta o0 o3 b2bua_cdr_replayed_total 1
assert_delta o0 o3 b2bua_cdr_written_total 1
assert_delta o0 o3 b2bua_cdr_rejected_total 0
log "ok: Redis back, the spooled CDR replayed"

assert_no_grep "(error|crit)" "$T/b2bua.log" "no errors in the daemon's log"
log "PASS"
