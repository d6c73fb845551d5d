#!/usr/bin/env bash
# deps.sh — install the Debian 12 packages b2bua needs to build, run and test.
# Installs only what is missing; safe to run again.  Needs root (or sudo).
set -euo pipefail

PACKAGES=(
	build-essential autoconf automake libtool pkg-config
	libsofia-sip-ua-dev liburing-dev libhiredis-dev libconfig-dev libjansson-dev nettle-dev libmimalloc-dev check
	sip-tester redis-server redis-tools jq valgrind procps iproute2 nftables
	groff-base man-db
	sipvicious
	clang libclang-rt-14-dev python3
	libmicrohttpd-dev curl
	libsystemd-dev systemd
	baresip-core gnuplot-nox
	debhelper dpkg-dev fakeroot lintian adduser git
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "deps: installing ${missing[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
