#!/bin/bash
#
# bench/trunk.sh [--transport udp|tcp|tls] RATE [SECONDS] — calls over a
# trunk between two b2bua hosts on loopback: sipp UAC (UDP) → host 1 →
# the trunk's transport (default tls: both hosts verify each other, one
# test CA) → host 2 → sipp UAS (UDP), RATE calls/s for SECONDS (default
# 20) seconds, 1 s of talk each (uac_basic / uas_basic).  The same chain
# over udp and tcp is the baseline a TLS figure is read against (Debian's
# sipp has no TLS, so TLS is measured between two b2bua hosts).
#
# Design note.  It reuses the e2e helpers (tests/e2e/lib.sh,
# multihost_lib.sh, tls_lib.sh: loopback addresses, redis-server, the
# hosts, the throwaway CA), 2 workers a host, and runs sipp
# without message traces so that sipp is not the bottleneck.  It prints
# successful and failed calls, retransmissions seen by either sipp, the
# call rate achieved and each host's CPU time per call (master, management
# process and workers from /proc), and the TLS connections of the trunk.
# Run it under the lock: flock /work/wt/bench.lock bench/trunk.sh --transport tls 200
set -u
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
top_builddir=${top_builddir:-$top_srcdir}
export top_srcdir top_builddir
TRUNK=tls
if [ "${1:-}" = --transport ]; then
	TRUNK=${2:?usage: $0 [--transport udp|tcp|tls] RATE [SECONDS]}
	shift 2
fi
case $TRUNK in
udp | tcp | tls) ;;
*) echo "$0: transport $TRUNK: must be udp, tcp or tls" >&2; exit 2 ;;
esac
RATE=${1:?usage: $0 [--transport udp|tcp|tls] RATE [SECONDS]}
SECS=${2:-20}
CALLS=$((RATE * SECS))
SIPP_TIMEOUT=$((SECS + 60))
. "$top_srcdir/tests/e2e/lib.sh"
_here=$top_srcdir/tests/e2e
. "$top_srcdir/tests/e2e/multihost_lib.sh"
. "$top_srcdir/tests/e2e/tls_lib.sh"

MH_REGISTRAR=0
CFG_LOG_LEVEL=info   # the hosts' readiness is read from the info lines
CFG_CALL_CAPACITY=16384
mh_pick_addrs 2
H2=$(mh_addr 2)
tls_pki
redis_start
# The trunk's port on host 2: TLS's own, else the public SIP port.
case $TRUNK in
tls)
	MH_CFG_EXTRA[1]=$(tls_config true)
	MH_CFG_EXTRA[2]=$(tls_config true)
	TRUNK_PORT=$TLS_PORT ;;
tcp)
	MH_CFG_EXTRA[1]='transports = [ "udp", "tcp" ];'
	MH_CFG_EXTRA[2]='transports = [ "udp", "tcp" ];'
	TRUNK_PORT=$SIP_PORT ;;
udp)
	TRUNK_PORT=$SIP_PORT ;;
esac
CFG_ROUTES="{ prefix = \"1\"; target = \"sip:$H2:$TRUNK_PORT;transport=$TRUNK\"; }"
mh_write_config 1
CFG_ROUTES="{ prefix = \"1\"; target = \"sip:$ADDR:$UAS_PORT;transport=udp\"; }"
mh_write_config 2
mh_start 1
mh_start 2

# CPU ticks (utime + stime) of a host's master and children.
host_ticks() {
	local p t=0
	for p in ${MH_PID[$1]} $(pgrep -P "${MH_PID[$1]}"); do
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
	done
	echo "$t"
}
sipp_plain() {  # NAME SIPP-ARGS...
	local name=$1
	shift
	(cd "$T" && exec timeout $((SIPP_TIMEOUT + 30)) sipp -nostdin -ci "$ADDR" \
		-trace_stat -stf "$T/$name.csv" -fd 1 -timeout "${SIPP_TIMEOUT}s" "$@") \
		>"$T/$name.out" 2>&1 &
	SIPP_PID[$name]=$!
	_track "$!"
}
b1=$(host_ticks 1) b2=$(host_ticks 2)
sipp_plain uas -sf "$SIPP_DIR/uas_basic.xml" -i "$ADDR" -p "$UAS_PORT" -m "$CALLS"
sleep 0.5
t0=$(date +%s.%N)
sipp_plain uac -sf "$SIPP_DIR/uac_basic.xml" -i "$ADDR" -p 5100 -s 1000 -m "$CALLS" \
	-r "$RATE" -d 1000 -l $((RATE * 4)) "$(mh_addr 1):$SIP_PORT"
sleep $((SECS / 2))
conns=$(ss -Htn state established "dst $H2:$TRUNK_PORT" | wc -l)
sipp_wait uac
t1=$(date +%s.%N)
sipp_wait uas
ok=$(sipp_stat uac 'SuccessfulCall(C)') bad=$(sipp_stat uac 'FailedCall(C)')
rtx=$(( $(sipp_stat uac 'Retransmissions(C)') + $(sipp_stat uas 'Retransmissions(C)') ))
hz=$(getconf CLK_TCK)
a1=$(host_ticks 1) a2=$(host_ticks 2)
awk -v ok="$ok" -v bad="$bad" -v rtx="$rtx" -v t0="$t0" -v t1="$t1" -v c1=$((a1 - b1)) \
	-v c2=$((a2 - b2)) -v hz="$hz" -v rate="$RATE" -v conns="$conns" -v tp="$TRUNK" 'BEGIN {
	printf "%s trunk: offered %d calls/s; %d ok, %d failed, %d retransmissions\n", tp, rate, ok, bad, rtx
	printf "achieved %.0f calls/s (ok / (wall - 1 s talk)); trunk connections: %d\n", ok / (t1 - t0 - 1), conns
	printf "CPU per call: host 1 (UDP in, %s out) %.0f us, host 2 (%s in, UDP out) %.0f us\n", tp,
		c1 / hz * 1e6 / (ok ? ok : 1), tp, c2 / hz * 1e6 / (ok ? ok : 1) }'
mh_stop 1
mh_stop 2
