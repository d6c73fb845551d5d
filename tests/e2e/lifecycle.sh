#!/bin/bash
#
# lifecycle — start-up, refusal of a bad config, and shutdown.
#
#  1. A config error is refused with "file:line: key: why", by `-t` and by
#     a real start (which must exit 1 and leave nothing bound or running).
#  2. SIGTERM with no calls: exit 0 promptly; every worker is gone.
#  3. SIGTERM during calls: the daemon drains.  A new INVITE gets 503, the
#     calls in progress complete normally, then the daemon exits 0 by
#     itself, long before drain_timeout.

. "$(dirname "$0")/lib.sh"

write_config
bound() { ss -Huan 2>/dev/null | awk '{print $4}' | grep -q "^$ADDR:"; }

# --- 1. config errors
"$B2BUA" -t -c "$CONF" >"$T/t-good.out" 2>&1 || fail "-t refused a good config: $(cat "$T/t-good.out")"
log "ok: -t accepts the good config"

check_refused() {  # FILE KEY
	local f=$1 key=$2 line rc
	line=$(grep -n "^$key " "$f" | cut -d: -f1)
	[ -n "$line" ] || hard_error "no '$key' line in $f"
	timeout 10 "$B2BUA" -t -c "$f" >"$T/t.out" 2>&1
	rc=$?
	assert_eq 1 "$rc" "-t on a bad $key: exit status"
	assert_grep "$f:$line: $key: " "$T/t.out" "-t names $(basename "$f"):$line: $key"
	timeout 10 "$B2BUA" -c "$f" >"$T/start.out" 2>&1
	rc=$?
	assert_eq 1 "$rc" "start with a bad $key: exit status"
	assert_grep "$f:$line: $key: " "$T/start.out" "start names $(basename "$f"):$line: $key"
	assert_no_grep 'ready' "$T/start.out" "nothing started"
	bound && fail "something is bound on $ADDR after a refused start"
	[ -e "$CLI_SOCK" ] && fail "the CLI socket exists after a refused start"
	return 0
}
sed 's/^sip_port = .*/sip_port = 99999;/' "$CONF" >"$T/bad-port.conf"
check_refused "$T/bad-port.conf" sip_port
sed 's/^workers = .*/workers = 2;\nwrokers = 3;/' "$CONF" >"$T/bad-key.conf"
check_refused "$T/bad-key.conf" wrokers
sed 's/^log_level = .*/log_level = "loud";/' "$CONF" >"$T/bad-level.conf"
check_refused "$T/bad-level.conf" log_level

# --- 1b. a worker that cannot start (its own port taken by another program):
# b2bua stops with exit 1 and says why, instead of restarting it for ever.
uas_start squatter uas_basic -p "$((WORKER_PORT_BASE + 1))" -m 1
timeout 15 "$B2BUA" -c "$CONF" >"$T/busy-port.out" 2>&1
rc=$?
assert_eq 1 "$rc" "start with worker 1's port taken: exit status"
assert_grep "worker 1 could not start \(see above\): stopping b2bua" "$T/busy-port.out" \
	"the master says which worker could not start"
assert_grep "cannot listen on sip:$ADDR:$((WORKER_PORT_BASE + 1))" "$T/busy-port.out" \
	"the worker says which address"
[ -e "$CLI_SOCK" ] && fail "the CLI socket exists after a failed start"
kill -TERM "${SIPP_PID[squatter]}" 2>/dev/null
wait_gone "${SIPP_PID[squatter]}" 5 || fail "the squatting sipp did not stop"
wait "${SIPP_PID[squatter]}" 2>/dev/null

# --- 2. SIGHUP, then SIGTERM with no calls
b2b_start
# SIGHUP reloads the file (tests/e2e/reload.sh has the rest): log_level and
# drain_timeout apply at once, in the master and in every child; a key that
# needs a restart (call_capacity) is named and kept; a broken file changes
# nothing.
sed -i 's/^log_level = .*/log_level = "debug";/' "$CONF"
kill -HUP "$B2B_PID"
wait_for 5 grep -q 'SIGHUP: .*: applied: log_level; restart_needed: none' "$T/b2bua.log" ||
	fail "SIGHUP did not apply log_level"
wait_for 5 grep -Eq 'worker 1\[[0-9]+\] debug: reload: generation' "$T/b2bua.log" ||
	fail "worker 1 does not log in debug after SIGHUP"
sed -i 's/^drain_timeout = .*/drain_timeout = 4;/; s/^call_capacity = .*/call_capacity = 512;/' \
	"$CONF"
kill -HUP "$B2B_PID"
wait_for 5 grep -q 'SIGHUP: .*: applied: drain_timeout; restart_needed: call_capacity' \
	"$T/b2bua.log" || fail "SIGHUP did not name what it applied and what needs a restart"
assert_no_grep 'not acknowledged|refused:' "$T/b2bua.log" "every process took both reloads"
echo 'this is not libconfig' >>"$CONF"
kill -HUP "$B2B_PID"
wait_for 5 grep -q 'SIGHUP: .*syntax error.*nothing changed' \
	"$T/b2bua.log" || fail "SIGHUP with a broken file"
alive "$B2B_PID" || fail "b2bua died on SIGHUP"
log "ok: SIGHUP"
workers=$(cli_json workers '.[].pid')
assert_eq "$CFG_WORKERS" "$(echo "$workers" | wc -w)" "worker pids listed"
t0=$SECONDS
b2b_stop 5
rc=$?
assert_eq 0 "$rc" "exit status after SIGTERM with no calls"
[ $((SECONDS - t0)) -le 2 ] || fail "took $((SECONDS - t0)) s to stop with no calls"
for p in $workers; do
	wait_gone "$p" 2 || fail "worker pid $p still running after the master exited"
done
log "ok: workers ${workers//$'\n'/ } gone"
bound && fail "a socket is still bound on $ADDR"
[ -e "$CLI_SOCK" ] && fail "the CLI socket was left behind"
log "ok: nothing left bound, no CLI socket"

# --- 3. SIGTERM during calls: drain
CFG_DRAIN_TIMEOUT=40
write_config
b2b_start
workers=$(cli_json workers '.[].pid')
N=10
uas_start uas uas_basic -m $N
uac_start uac uac_long -m $N -r $N -l $N
answered() { [ "$(cli_json calls '[.[] | select(.state == "ANSWERED")] | length')" = $N ]; }
wait_for 8 answered || fail "calls not up: $(cli show calls)"

log "SIGTERM to the master with $N calls up"
t0=$SECONDS
kill -TERM "$B2B_PID"
draining() { [ "$(cli_json stats '.draining')" = true ]; }
wait_for 3 draining || fail "show stats does not say draining"
log "ok: show stats says draining"
alive "$B2B_PID" || fail "the master exited with calls up"

uac_run refused uac_expect_code -m 1 -key maxfwd 70 -key extra_hdr "X-Test: draining"
assert_count "$T/refused.msg" recv 503/INVITE 1
assert_eq $N "$(cli_json calls 'length')" "calls still up while draining"

sipp_wait uac || fail "uac exited $? ($(sipp_stat uac 'FailedCall(C)') failed calls)"
uas_wait uas
assert_sipp_ok uac $N
assert_sipp_ok uas $N
assert_count "$T/uas.msg" recv INVITE $N
log "calls ended $((SECONDS - t0)) s after SIGTERM"

# Nothing left to wait for: the master must go within a few seconds, not
# after the 40 s drain_timeout.
wait_gone "$B2B_PID" 6 || fail "the master still runs $((SECONDS - t0)) s after SIGTERM, calls done"
wait "$B2B_PID"
rc=$?
_REAPED[$B2B_PID]=1
assert_eq 0 "$rc" "exit status after draining"
for p in $workers; do
	wait_gone "$p" 2 || fail "worker pid $p still running after the master exited"
done
log "ok: master and workers gone $((SECONDS - t0)) s after SIGTERM"
assert_grep 'master ready' "$T/b2bua.log" "log: master ready"
log "PASS"
