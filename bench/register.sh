#!/bin/bash
#
# bench/register.sh [COUNT] [RATE] [WORKERS] — REGISTER-with-challenge
# throughput of b2bua's registrar on loopback, with a real redis-server.
#
# Design note.  COUNT registrations (default 2000) of COUNT different users
# (user1..userCOUNT in a private redis-server, created with `b2bua-cli user
# add` once the daemon is up, as an operator would: some 10 s per thousand
# users on a 2-core machine, before the measurement; auth_algorithms = [ "MD5" ],
# as sipp 3.6 cannot answer SHA-256), offered at RATE
# per second (default 500) by one sipp (tests/sipp/reg_inf.xml, users from an
# injection file): each one REGISTER, 401, REGISTER with Authorization, 200,
# i.e. two Redis round trips (the AUTH and REGISTER Lua scripts) per
# registration.  It prints
#   - registrations/s achieved: successful registrations / the caller's wall
#     time (first REGISTER sent to last 200 received);
#   - failed registrations and retransmissions (any retransmission on
#     loopback means someone fell behind);
#   - REGISTER->200 time of the authenticated REGISTER (p50/p90/p99), from
#     sipp's microsecond -trace_shortmsg timestamps;
#   - b2bua and redis-server CPU per registration (/proc/PID/stat);
#   - how many bindings Redis holds afterwards (must be COUNT).
# Everything is bounded in time and stopped by PID; the temp dir is removed
# unless B2BUA_BENCH_KEEP=1.  Exit status 0 when every registration
# succeeded and Redis holds every binding, 1 otherwise.  The helpers shared
# with run.sh (process handling, cleanup, loopback address, redis-server,
# readiness, statistics) are in bench/lib.sh.

set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

usage() {
	echo "usage: $0 [COUNT] [RATE] [WORKERS]   (default 2000 500 2; RATE 1..20000/s)" >&2
	exit 2
}
[ $# -le 3 ] || usage
COUNT=${1:-2000}
RATE=${2:-500}
WORKERS=${3:-2}
bench_uint "$COUNT" 1 1000000 || usage
bench_uint "$RATE" 1 20000 || usage
bench_uint "$WORKERS" 1 64 || usage

for cmd in sipp redis-server redis-cli; do
	command -v "$cmd" >/dev/null 2>&1 ||
		{ echo "$cmd not found (Debian packages sip-tester, redis-server)" >&2; exit 1; }
done
[ -x "$B2BUA" ] || { echo "$B2BUA not built: run make" >&2; exit 1; }
[ -x "$CLI" ] || { echo "$CLI not built: run make" >&2; exit 1; }

RUN_LIMIT=$((COUNT / RATE + 60))   # seconds any sipp may run
PREFIX=b2bua:

bench_begin b2bua-bench-reg

# A loopback address nobody uses: 127.251.x.1.
bench_pick_addr 251

# ---------------------------------------------------------------- redis
bench_redis_start || exit 1

# ---------------------------------------------------------------- the daemon
cat >"$T/b2bua.conf" <<EOF
node_id = "bench-reg";
workers = $WORKERS;
drain_timeout = 5;
listen = "$ADDR";
sip_port = 5060;
worker_port_base = 5070;
udp_rcvbuf = 8388608;
call_capacity = 1024;
cli_socket = "$T/cli.sock";
log_level = "warn";
cdr_spool_dir = "$T/spool";
routes = ( );
domain = "$ADDR";
redis_address = "unix:$REDIS_SOCK";
auth_secret = "bench-secret-0123456789";
auth_algorithms = [ "MD5" ];
auth_fail_limit = 100000;
rate_limit_register = 0;
EOF

# Ready also means one Redis client per worker.
# shellcheck disable=SC2317  # called by bench_b2bua_start
redis_clients() { [ "$(bench_rcli CLIENT LIST | grep -vc 'cmd=client')" -ge "$WORKERS" ]; }
bench_b2bua_start "$WORKERS" redis_clients

# ---------------------------------------------------------------- users
# user$i with password pw$i: the sipp injection file, and the subscribers,
# added through the daemon's CLI (realm: its domain, $ADDR).
{ echo SEQUENTIAL; for ((i = 1; i <= COUNT; i++)); do echo "user$i;pw$i"; done; } \
	>"$T/users.csv"
# Four clients at a time: most of the cost is starting b2bua-cli.  xargs
# exits non-zero when any of them failed.
echo "creating $COUNT users with b2bua-cli" >&2
# shellcheck disable=SC2016  # $0..$3 are expanded by sh -c
tail -n +2 "$T/users.csv" | tr ';' ' ' | xargs -P 4 -n 2 sh -c \
	'exec timeout 10 "$0" -s "$1" user add "$2" --password "$3" >/dev/null' \
	"$CLI" "$T/cli.sock" || { echo "b2bua-cli user add failed" >&2; exit 1; }
users=$(bench_rcli EVAL "return #redis.call('KEYS', ARGV[1])" 0 "${PREFIX}user:*")
[ "$users" = "$COUNT" ] || { echo "Redis holds $users users, not $COUNT" >&2; exit 1; }

# ---------------------------------------------------------------- the run
echo "b2bua register bench: $COUNT registrations at $RATE/s, $WORKERS workers, $ADDR" >&2
cmd=(sipp -sf "$SIPP_DIR/reg_inf.xml" -inf "$T/users.csv" -i "$ADDR" -p 5090
	-m "$COUNT" -r "$RATE" -l $((RATE * 2 + 100)) -nostdin -buff_size "$BUF" -ci "$ADDR"
	-timeout "${RUN_LIMIT}s" -timeout_error
	-trace_stat -stf "$T/uac.csv" -fd 5 -trace_shortmsg -trace_err -error_file "$T/uac.err"
	"$ADDR:5060")
echo "sipp: ${cmd[*]}" >"$T/command.txt"
b2b_cpu0=$(bench_cpu_ticks "$B2B_PID" "${CHILD_PIDS[@]}")
redis_cpu0=$(bench_cpu_ticks "$REDIS_PID")
t0=$(date +%s%N)
(cd "$T" && exec timeout $((RUN_LIMIT + 15)) "${cmd[@]}") >"$T/uac.out" 2>&1 &
UAC_PID=$!
PIDS+=("$UAC_PID")
wait "$UAC_PID"
uac_rc=$?
t1=$(date +%s%N)
b2b_cpu1=$(bench_cpu_ticks "$B2B_PID" "${CHILD_PIDS[@]}")
redis_cpu1=$(bench_cpu_ticks "$REDIS_PID")

ok=$(bench_sipp_stat "$T/uac.csv" 'SuccessfulCall(C)')
failed=$(bench_sipp_stat "$T/uac.csv" 'FailedCall(C)')
retrans=$(bench_sipp_stat "$T/uac.csv" 'Retransmissions(C)')
bindings=$(bench_rcli EVAL "return #redis.call('KEYS', ARGV[1])" 0 "${PREFIX}loc:*")

# Per registration, from the short message log (tab-separated: date, time,
# epoch seconds with microseconds, S|R, Call-ID, "CSeq:N METHOD", first
# line): the authenticated REGISTER (CSeq 2) to its 200 into rtt.txt; the
# first REGISTER sent and the last 200 received into span.txt.
cat "$T"/reg_inf_*_shortmessages.log 2>/dev/null | awk -F'\t' -v span="$T/span.txt" '
	$4 == "S" && $6 ~ /:1 REGISTER$/ && !($5 in first) { first[$5] = $3 }
	$4 == "S" && $6 ~ /:2 REGISTER$/ && !($5 in auth) { auth[$5] = $3 }
	$4 == "R" && $6 ~ /:2 REGISTER$/ && $7 ~ /^SIP\/2\.0 200/ && ($5 in auth) && !($5 in done) {
		done[$5] = 1; printf "%.3f\n", ($3 - auth[$5]) * 1000
		if (t0 == "" || first[$5] < t0) t0 = first[$5]
		if ($3 > t1) t1 = $3 }
	END { if (t0 != "") printf "%.6f\n", t1 - t0 > span }' | sort -n >"$T/rtt.txt"
span_s=$(cat "$T/span.txt" 2>/dev/null)

wall_ms=$(((t1 - t0) / 1000000))
b2b_ms=$(((b2b_cpu1 - b2b_cpu0) * 1000 / CLK_TCK))
redis_ms=$(((redis_cpu1 - redis_cpu0) * 1000 / CLK_TCK))

printf '\n'
printf 'offered rate           %s registrations/s, %s registrations, %s workers\n' \
	"$RATE" "$COUNT" "$WORKERS"
printf 'registrations/s        %s (first REGISTER to last 200: %s s)\n' \
	"$(awk -v n="$ok" -v s="${span_s:-0}" 'BEGIN { printf "%.1f", (s > 0 ? n / s : 0) }')" \
	"${span_s:-n/a}"
printf 'successful             %s\n' "$ok"
printf 'failed                 %s\n' "$failed"
printf 'retransmissions        %s\n' "$retrans"
printf 'bindings in Redis      %s\n' "$bindings"
printf 'auth REGISTER->200 ms  p50 %s  p90 %s  p99 %s  (%s registrations)\n' \
	"$(bench_pct 50)" "$(bench_pct 90)" "$(bench_pct 99)" "$(wc -l <"$T/rtt.txt")"
printf 'CPU per registration   b2bua %s us (master, management process, %s workers), redis-server %s us\n' \
	"$(bench_per "$b2b_ms" "$ok")" "$WORKERS" "$(bench_per "$redis_ms" "$ok")"
printf 'wall time              %s ms\n' "$wall_ms"
printf '%s\n' "$(cat "$T/command.txt")"

bench_alive "$B2B_PID" || { echo "b2bua died during the run" >&2; exit 1; }
[ "$uac_rc" -eq 0 ] && [ "$failed" = 0 ] && [ "$ok" = "$COUNT" ] && [ "$bindings" = "$COUNT" ] ||
	exit 1
exit 0
