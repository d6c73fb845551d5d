#!/bin/bash
#
# systemd_notify — b2bua under systemd's notify protocol (b2bua/notify.h),
# with a real AF_UNIX datagram NOTIFY_SOCKET read by a small python3
# listener that writes each line it receives with its arrival time.
#
#  1. The unit made by make (etc/b2bua.service) has the keys the design asks
#     for and passes `systemd-analyze verify` (offline: no systemd needed).
#  2. READY=1 waits for every worker: worker 1 is stopped (SIGSTOP) as soon
#     as it is forked, and no READY=1 comes while it is stopped; after
#     SIGCONT it comes, once, after every "worker N ready" line of the log,
#     with STATUS lines before and after.
#  3. WATCHDOG_USEC=2 s: WATCHDOG=1 every 1 s, no gap of a whole interval.
#  4. A hung worker (SIGSTOP) stops the feeding and says so in STATUS; it
#     resumes after SIGCONT.
#  5. A worker that crashes (SIGKILL, five times in a row) is restarted by
#     the master within its grace: the feeding never stops.
#  5b. b2bua-cli reload: RELOADING=1, then READY=1 again.
#  6. SIGTERM: STOPPING=1 and a draining STATUS; b2bua exits 0.
#  7. Without NOTIFY_SOCKET nothing is sent.

. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null || skip "python3 not found (Debian package python3)"

WD_USEC=2000000          # systemd's WatchdogSec=2s: the master feeds every second
WD_S=2                   # the same in seconds: no gap between feeds may reach it
NOTIFY_SOCK=$T/notify.sock
NOTIFY_OUT=$T/notify.out

# --- 1. the unit
unit=$top_builddir/etc/b2bua.service
[ -f "$unit" ] || hard_error "$unit is not built (run make)"
for key in 'Type=notify' 'NotifyAccess=main' 'User=b2bua' 'Group=b2bua' \
	'RuntimeDirectory=b2bua' 'StateDirectory=b2bua' 'KillMode=mixed' \
	'Restart=on-failure' 'ExecReload=/bin/kill -HUP $MAINPID' 'NoNewPrivileges=yes' \
	'ProtectSystem=strict'; do
	grep -qxF "$key" "$unit" || fail "$unit has no line '$key'"
done
grep -qE '^ExecStart=/[^ @]*/b2bua -c /[^ @]*/b2bua/b2bua\.conf$' "$unit" ||
	fail "ExecStart is not '<sbindir>/b2bua -c <sysconfdir>/b2bua/b2bua.conf': $(grep ExecStart= "$unit")"
grep -q '@' "$unit" && fail "$unit still has an @...@ placeholder"
wd=$(sed -n 's/^WatchdogSec=\([0-9]*\)s$/\1/p' "$unit")
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$unit")
[ -n "$wd" ] && [ "$wd" -gt 0 ] || fail "no WatchdogSec=Ns in $unit"
# The default drain_timeout is 30 s, and the master kills what is left 5 s later.
[ -n "$stop" ] && [ "$stop" -gt 35 ] || fail "TimeoutStopSec ($stop s) is not above drain_timeout + 5 s"
if command -v systemd-analyze >/dev/null; then
	# verify checks that ExecStart exists: point it at the binary just built.
	sed "s|^ExecStart=[^ ]*|ExecStart=$B2BUA|" "$unit" >"$T/b2bua.service"
	systemd-analyze verify --man=no "$T/b2bua.service" >"$T/verify.out" 2>&1 ||
		fail "systemd-analyze verify: $(cat "$T/verify.out")"
	[ -s "$T/verify.out" ] && fail "systemd-analyze verify warns: $(cat "$T/verify.out")"
	log "ok: the unit passes systemd-analyze verify"
else
	log "systemd-analyze not found (Debian package systemd): the unit's keys checked by grep only"
fi

# --- the listener
cat >"$T/listen.py" <<'EOF'
import socket, sys, time
sock_path, out_path = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sock_path)
with open(out_path, "a", buffering=1) as out:
    while True:
        data = s.recv(4096).decode(errors="replace")
        t = time.monotonic()
        for line in data.splitlines():
            out.write("%.3f %s\n" % (t, line))
EOF
: >"$NOTIFY_OUT"
python3 "$T/listen.py" "$NOTIFY_SOCK" "$NOTIFY_OUT" 2>"$T/listen.err" &
_track $!
wait_for 30 test -S "$NOTIFY_SOCK" || hard_error "the listener did not bind $NOTIFY_SOCK"

got() { grep -c -- " $1\$" "$NOTIFY_OUT"; }     # how many lines LINE arrived
feeds() { got WATCHDOG=1; }
# The largest gap between WATCHDOG=1 lines from the Nth one (1-based) on.
max_gap_from() {
	awk -v from="$1" '$2 == "WATCHDOG=1" { n++; if (n >= from) { if (n > from && $1 - t > g) g = $1 - t; t = $1 } }
		END { printf "%.3f\n", g }' "$NOTIFY_OUT"
}
line_of() { grep -n -m1 -- "$1" "$T/b2bua.log" | cut -d: -f1; }
# For wait_for, which runs its command again each time: at least N lines LINE / log lines ERE.
got_at_least() { [ "$(got "$2")" -ge "$1" ]; }
logged_at_least() { [ "$(grep -Ec -- "$2" "$T/b2bua.log")" -ge "$1" ]; }

# --- 2. READY=1 only once every worker is ready
write_config
# start_stopping_w1: start b2bua under NOTIFY_SOCKET and stop worker 1 as
# soon as it is forked.  0 when it was stopped before it logged "worker 1
# ready:": it writes that line (one write(2)) before its loop runs, and only
# its loop answers the master's pings, so from then on a READY=1 is a bug.
start_stopping_w1() {
	local i
	: >"$NOTIFY_OUT"
	: >"$T/b2bua.log"
	NOTIFY_SOCKET=$NOTIFY_SOCK WATCHDOG_USEC=$WD_USEC "$B2BUA" -c "$CONF" >>"$T/b2bua.log" 2>&1 &
	B2B_PID=$!
	_track "$B2B_PID"
	W1=
	for ((i = 0; i < 500; i++)); do
		W1=$(pgrep -P "$B2B_PID" -x b2bua-w1) && break
		sleep 0.01
	done
	[ -n "$W1" ] || fail "worker 1 was not forked within 5 s"
	kill -STOP "$W1"
	wait_for 10 stopped_state "$W1" || fail "worker 1 (pid $W1) did not stop"
	! grep -q 'worker 1 ready:' "$T/b2bua.log"
}
# The process is stopped (state T): SIGSTOP has taken effect, not only been sent.
stopped_state() { [ "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" = T ]; }
caught=0
for try in 1 2 3; do
	if start_stopping_w1; then
		caught=1
		break
	fi
	kill -CONT "$W1"
	log "worker 1 was ready before it could be stopped (try $try)"
	[ "$try" = 3 ] && break   # go on with this daemon: the log's order is checked below
	b2b_stop 10 || fail "b2bua did not stop cleanly"
done
if [ "$caught" = 1 ]; then
	sleep 2
	assert_eq 0 "$(got READY=1)" "READY=1 while worker 1 is stopped before its loop runs"
	assert_ge 1 "$(got 'STATUS=starting 2 workers')" "STATUS=starting 2 workers"
	kill -CONT "$W1"
	log "ok: no READY=1 while worker 1 was stopped (2 s)"
else
	log "NOT CHECKED: worker 1 was ready before it could be stopped, three times"
fi
wait_for 20 grep -q ' READY=1$' "$NOTIFY_OUT" || fail "no READY=1 within 20 s"
_remember_workers
wait_for 5 test -S "$CLI_SOCK" || fail "no CLI socket"
ready_line=$(line_of 'systemd: every worker is ready: READY=1')
[ -n "$ready_line" ] || fail "the master did not log READY=1"
for what in 'worker 0 ready:' 'worker 1 ready:' 'management process ready'; do
	l=$(line_of "$what")
	[ -n "$l" ] || fail "no '$what' line in the log"
	[ "$l" -lt "$ready_line" ] || fail "READY=1 (log line $ready_line) before '$what' (line $l)"
done
assert_eq 2 "$(cli_json workers '[.[] | select(.pid > 0)] | length')" \
	"show workers after READY=1: both workers run"
assert_eq 1 "$(got READY=1)" "READY=1 sent once"
assert_eq 1 "$(got 'STATUS=ready: 2 workers')" "STATUS=ready: 2 workers"
starting=$(grep -n -m1 ' STATUS=starting 2 workers$' "$NOTIFY_OUT" | cut -d: -f1)
ready=$(grep -n -m1 ' READY=1$' "$NOTIFY_OUT" | cut -d: -f1)
[ -n "$starting" ] && [ "$starting" -lt "$ready" ] || fail "STATUS=starting not before READY=1"
log "ok: READY=1 once, after every worker and the management process"

# --- 3. the watchdog's rate
c1=$(feeds)
sleep 5
c2=$(feeds)
n=$((c2 - c1))
[ "$n" -ge 3 ] && [ "$n" -le 7 ] || fail "$n WATCHDOG=1 in 5 s (expected about 5)"
gap=$(max_gap_from "$((c1 + 1))")
gap_ok() { awk -v g="$1" -v w="$WD_S" 'BEGIN { exit !(g < w) }'; }
gap_ok "$gap" || fail "a gap of $gap s between WATCHDOG=1 (interval $WD_S s)"
log "ok: $n WATCHDOG=1 in 5 s, largest gap $gap s"

# --- 4. a hung worker stops the feeding
W0=$(cli_json workers '.[] | select(.index == 0) | .pid')
kill -STOP "$W0"
# Stopped: no WATCHDOG=1 for 2.5 s (more than two feeding periods).
stopped_feeding() {
	local a b
	a=$(feeds)
	sleep 2.5
	b=$(feeds)
	[ "$a" = "$b" ]
}
wait_for 10 stopped_feeding || { kill -CONT "$W0"; fail "WATCHDOG=1 still sent while worker 0 is stopped"; }
c1=$(feeds)
sleep 3
c2=$(feeds)
assert_eq "$c1" "$c2" "no WATCHDOG=1 for 3 more seconds while worker 0 is stopped"
assert_ge 1 "$(got 'STATUS=worker 0 not answering')" "STATUS says which worker"
assert_grep 'worker 0 did not answer the master.s ping: the watchdog is not fed' "$T/b2bua.log" \
	"the log says why"
kill -CONT "$W0"
wait_for 5 got_at_least "$((c2 + 1))" WATCHDOG=1 || fail "WATCHDOG=1 did not resume after SIGCONT"
wait_for 5 got_at_least 2 'STATUS=ready: 2 workers' || fail "STATUS did not say ready again"
log "ok: a stopped worker stops the feeding; it resumes after SIGCONT"

# --- 5. a crashed worker is restarted within its grace: the feeding goes on.
# Worker 1 is killed five times, each successor as soon as it is forked: it
# keeps dying young, so the master restarts it with back-off (0.1, 0.2, 0.4,
# 0.8 s) and it stays silent for several rounds, all within its 10 s grace.
sleep 1
c1=$(feeds)
r1=$(got 'STATUS=ready: 2 workers')
W1=$(cli_json workers '.[] | select(.index == 1) | .pid')
for k in 1 2 3 4 5; do
	kill -KILL "$W1"
	# Counted after the last kill: a "ready" before it (a successor that
	# answered between two kills) must not end the wait below.
	[ "$k" = 5 ] && { r1=$(got 'STATUS=ready: 2 workers'); break; }
	old=$W1
	W1=
	for ((i = 0; i < 1000; i++)); do
		W1=$(pgrep -P "$B2B_PID" -x b2bua-w1) && [ "$W1" != "$old" ] && break
		W1=
		sleep 0.01
	done
	[ -n "$W1" ] || fail "worker 1 was not restarted within 10 s (kill $k)"
done
wait_for 15 got_at_least "$((r1 + 1))" 'STATUS=ready: 2 workers' ||
	fail "worker 1 not back and answering within 15 s of its last kill"
restarts1() { [ "$(cli_json workers '.[] | select(.index == 1) | .restarts')" -ge 5 ]; }
wait_for 10 restarts1 || fail "restarts of worker 1: expected >= 5, got \
'$(cli_json workers '.[] | select(.index == 1) | .restarts')'"
sleep 2.5
gap=$(max_gap_from "$c1")
gap_ok "$gap" ||
	fail "a gap of $gap s in WATCHDOG=1 while worker 1 restarted (grace: no gap expected)"
assert_ge 1 "$(got 'STATUS=worker 1 restarting')" "STATUS says worker 1 restarts"
log "ok: the feeding went on while worker 1 died five times (largest gap $gap s)"

# --- 5b. reload (b2bua-cli reload, as SIGHUP): RELOADING=1, then READY=1 again
r0=$(got READY=1)
cli reload >"$T/reload.out" 2>&1 || fail "b2bua-cli reload failed: $(cat "$T/reload.out")"
wait_for 10 got_at_least "$((r0 + 1))" READY=1 || fail "no READY=1 after the reload"
assert_eq 1 "$(got RELOADING=1)" "RELOADING=1 once for one reload"
reloading=$(grep -n -m1 ' RELOADING=1$' "$NOTIFY_OUT" | cut -d: -f1)
ready2=$(grep -n ' READY=1$' "$NOTIFY_OUT" | tail -1 | cut -d: -f1)
[ "$reloading" -lt "$ready2" ] || fail "READY=1 did not follow RELOADING=1"
log "ok: a reload says RELOADING=1, then READY=1"

# --- 6. SIGTERM: STOPPING=1
b2b_stop 15
rc=$?
assert_eq 0 "$rc" "exit status after SIGTERM"
assert_eq 1 "$(got STOPPING=1)" "STOPPING=1 on SIGTERM"
assert_ge 1 "$(got 'STATUS=draining: 0 calls')" "STATUS=draining"
stopping=$(grep -n -m1 ' STOPPING=1$' "$NOTIFY_OUT" | cut -d: -f1)
[ "$stopping" -gt "$ready" ] || fail "STOPPING=1 before READY=1"
log "ok: STOPPING=1 on SIGTERM, exit 0"

# --- 7. without NOTIFY_SOCKET nothing is sent
before=$(wc -l <"$NOTIFY_OUT")
WATCHDOG_USEC=$WD_USEC b2b_start
sleep 1.5
b2b_stop 15 || fail "b2bua did not stop cleanly without NOTIFY_SOCKET"
assert_eq "$before" "$(wc -l <"$NOTIFY_OUT")" "lines received without NOTIFY_SOCKET"
assert_no_grep 'systemd:' "$T/b2bua.log" "no systemd lines in the log without NOTIFY_SOCKET"
log "ok: nothing sent without NOTIFY_SOCKET"
log "PASS"
