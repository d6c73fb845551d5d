#!/bin/bash
#
# netns_lib.sh — for e2e tests that must lose datagrams on purpose
# (crash_unacked*.sh): each runs in a network namespace of its own and
# drops them there with nftables, never touching the host's rules.
#
#   netns_enter "$@"   first thing in the test: re-executes it under
#                      unshare -n with that namespace's loopback up (skips
#                      the test, exit 77, without root, unshare, ip or nft)
#   nft_drop TABLE HOOK PORTS BITS HEX
#                      a table of its own that drops (and counts) every UDP
#                      datagram to PORTS (one port or a range, a-b) whose
#                      payload starts with HEX, BITS long, on hook HOOK:
#                      "output" (the sender's send fails) or "input"
#                      (silently: use it for what sipp sends, as sipp 3.6
#                      crashes when the retransmission of its own message
#                      fails)
#   nft_dropped TABLE  how many it dropped
#   nft_undrop TABLE   removes it
# nft_drop and nft_undrop call lib.sh's fail: source lib.sh first.

netns_enter() {
	[ -n "${B2BUA_E2E_NETNS:-}" ] && return 0
	if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null 2>&1 ||
		! command -v nft >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1; then
		echo "SKIP: needs root, unshare, ip and nft (Debian package nftables)" >&2
		exit 77
	fi
	exec env B2BUA_E2E_NETNS=1 unshare -n bash -c 'ip link set lo up && exec bash "$0" "$@"' \
		"$0" "$@"
}

# The payload starts 64 bits into the UDP header.
nft_drop() {
	nft -f - <<EOF || fail "cannot add the nftables rule $1"
table inet $1 {
	chain c {
		type filter hook $2 priority 0; policy accept;
		udp dport $3 @th,64,$4 $5 counter drop
	}
}
EOF
}

nft_dropped() { nft list table inet "$1" | sed -n 's/.*counter packets \([0-9]*\).*/\1/p'; }

nft_undrop() { nft delete table inet "$1" || fail "cannot remove the nftables rule $1"; }
