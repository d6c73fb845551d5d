#!/bin/bash
#
# package — the Debian package, built, linted, installed, given a call and
# purged.
#
# Design note.  The package is built from a copy of the checkout's files as
# git lists them (tracked and untracked-but-not-ignored: what a commit of
# the working tree would hold) in $T, so the checkout gets no build product
# and the build starts from a clean tree, as `dpkg-buildpackage -us -uc -b`
# does on a fresh clone.  Unit tests are not run again inside the build
# (nocheck): this suite runs them from the checkout already.  lintian must
# report no error.  Then:
#   - as root (CI), the package is installed on this machine with dpkg -i:
#     its maintainer scripts run (the b2bua user, the configuration's
#     permissions, the state directory), and `dpkg --purge` must remove
#     everything again.  An install of b2bua that this test did not make
#     (no marker in /var/lib/b2bua) is left alone: the test then runs in a
#     scratch root instead.  Runs of this test on one machine take turns
#     (a lock), since they install the same package;
#   - otherwise (or with B2BUA_PACKAGE_INSTALL=scratch, for a root who
#     wants this machine left alone) the package is unpacked into a scratch
#     root (dpkg-deb -x).
# Either way the installed b2bua checks the installed configuration (-t)
# and carries one call (sipp UAC → installed b2bua → sipp UAS) on a config
# derived from the installed one: only addresses, ports, paths, workers and
# the drain time changed.  Its CDR must be in Redis, and `b2bua-cli cdr tail`
# (the installed one) must show it.  The systemd unit is never started.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

for tool in dpkg-buildpackage dpkg-checkbuilddeps dpkg-parsechangelog lintian git; do
	command -v "$tool" >/dev/null 2>&1 ||
		skip "$tool not found (Debian packages dpkg-dev, debhelper, lintian, git)"
done
git -C "$top_srcdir" rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
	skip "$top_srcdir is not a git checkout: the package is built from git's list of files"
BUILD_DEPS_MISSING=$(cd "$top_srcdir" && DEB_BUILD_PROFILES=nocheck dpkg-checkbuilddeps 2>&1) ||
	skip "build dependencies missing (scripts/deps.sh installs them): $BUILD_DEPS_MISSING"

MARKER=/var/lib/b2bua/.e2e-package-test   # this test installed the b2bua on this machine
VERSION=$(dpkg-parsechangelog -l "$top_srcdir/debian/changelog" -S Version) ||
	hard_error "cannot read the version in debian/changelog"
SRC=$T/pkg/b2bua-$VERSION

# ------------------------------------------------------------ build and lint

# package_copy_tree: the checkout's files as git lists them into $SRC
# (files deleted in the working tree but still in the index are skipped).
package_copy_tree() {
	mkdir -p "$SRC"
	(cd "$top_srcdir" && git ls-files -z --cached --others --exclude-standard |
		tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -C "$SRC" -xf - ||
		fail "copying the checkout to $SRC failed"
	[ -x "$SRC/debian/rules" ] || fail "debian/rules missing or not executable in the copy"
}

# package_build: dpkg-buildpackage -us -uc -b in the copy, niced so that
# the end-to-end tests running beside it keep their timing; sets DEB.
package_build() {
	local arch
	log "building the package in $SRC"
	(cd "$SRC" && DEB_BUILD_OPTIONS="nocheck noautodbgsym parallel=2" DEB_BUILD_PROFILES=nocheck \
		timeout 600 nice -n 19 dpkg-buildpackage -us -uc -b) >"$T/build.log" 2>&1 ||
		{ tail -n 30 "$T/build.log" >&2; fail "dpkg-buildpackage failed (see build.log)"; }
	arch=$(dpkg --print-architecture)
	DEB=$T/pkg/b2bua_${VERSION}_$arch.deb
	[ -s "$DEB" ] || fail "no $(basename "$DEB") after the build"
	log "ok: built $(basename "$DEB")"
}

# package_lint: no lintian error; warnings and their explanations go to the log.
package_lint() {
	timeout 120 lintian --info "$DEB" >"$T/lintian.txt" 2>&1
	grep -E '^[EW]: ' "$T/lintian.txt" >&2
	assert_no_grep '^E: ' "$T/lintian.txt" "lintian: no error on $(basename "$DEB")"
}

# package_contents: the files the package must ship, by what the source has.
package_contents() {
	# Every path, directories ending in '/': /usr/sbin/b2bua, /etc/b2bua/ ...
	dpkg-deb --fsys-tarfile "$DEB" | tar -tf - | sed -e 's|^\./|/|' -e '/^\/$/d' \
		>"$T/contents.txt" || fail "cannot list $(basename "$DEB")"
	local f want=(/usr/sbin/b2bua /usr/sbin/b2bua-cli /etc/b2bua/b2bua.conf
		/usr/share/doc/b2bua/copyright /usr/share/doc/b2bua/README.Debian)
	# The unit and the man pages, once the source has them.
	[ -f "$top_srcdir/etc/b2bua.service.in" ] && want+=(/lib/systemd/system/b2bua.service)
	for f in "$top_srcdir"/docs/man/*.[0-9]; do
		[ -f "$f" ] || continue
		f=$(basename "$f")
		want+=("/usr/share/man/man${f##*.}/$f.gz")
	done
	for f in "${want[@]}"; do
		grep -qxF "$f" "$T/contents.txt" || fail "the package does not ship $f"
	done
	log "ok: the package ships ${want[*]}"
	assert_eq /etc/b2bua/b2bua.conf "$(dpkg-deb -I "$DEB" conffiles)" "conffiles"
}

# ------------------------------------------------------------ install and purge

# package_ours: the installed b2bua (if any) was installed by this test.
package_ours() { [ -f "$MARKER" ]; }

package_installed() {
	[ "$(dpkg-query -W -f='${db:Status-Status}' b2bua 2>/dev/null)" != "" ] &&
		[ "$(dpkg-query -W -f='${db:Status-Status}' b2bua 2>/dev/null)" != not-installed ]
}

# package_purge: dpkg --purge b2bua, with the daemon this test started
# stopped first (its binary is about to go).
package_purge() {
	[ -z "$B2B_PID" ] || ! alive "$B2B_PID" || b2b_stop 10 || true
	dpkg --purge b2bua >"$T/purge.log" 2>&1 || { cat "$T/purge.log" >&2; return 1; }
}

# package_install: dpkg -i as root; sets ROOT ("" for the machine itself,
# else the scratch root the package was unpacked into).
package_install() {
	local lock=/run/lock/b2bua-e2e-package.lock
	[ -d /run/lock ] || lock=/tmp/b2bua-e2e-package.lock
	if [ "$(id -u)" = 0 ] && [ "${B2BUA_PACKAGE_INSTALL:-}" != scratch ]; then
		exec {PKG_LOCK}>"$lock" || fail "cannot open $lock"
		flock -w 600 "$PKG_LOCK" || fail "another run of the package test holds the lock"
		if package_installed && package_ours; then
			log "a b2bua left by an earlier run of this test is installed: purging it"
			package_purge || fail "purging the earlier test install failed"
		fi
		if ! package_installed; then
			ROOT=
			dpkg -i "$DEB" >"$T/install.log" 2>&1 ||
				{ cat "$T/install.log" >&2; fail "dpkg -i failed"; }
			: >"$MARKER" || fail "cannot write $MARKER"
			_PKG_INSTALLED=1
			log "ok: dpkg -i $(basename "$DEB")"
			return 0
		fi
		log "a b2bua package this test did not install is present: using a scratch root"
	fi
	ROOT=$T/root
	dpkg-deb -x "$DEB" "$ROOT" || fail "dpkg-deb -x failed"
	log "ok: unpacked into $ROOT"
}

# package_check_scripts: what the maintainer scripts did (root install only).
package_check_scripts() {
	assert_eq "install ok installed" "$(dpkg-query -W -f='${Status}' b2bua)" "dpkg status"
	getent passwd b2bua >/dev/null || fail "no system user b2bua after dpkg -i"
	getent group b2bua >/dev/null || fail "no group b2bua after dpkg -i"
	assert_eq "root:b2bua 640" "$(stat -c '%U:%G %a' /etc/b2bua/b2bua.conf)" \
		"/etc/b2bua/b2bua.conf owner and mode"
	assert_eq "b2bua:b2bua" "$(stat -c '%U:%G' /var/lib/b2bua)" "/var/lib/b2bua owner"
	if [ -f /lib/systemd/system/b2bua.service ]; then
		[ ! -e /etc/systemd/system/multi-user.target.wants/b2bua.service ] ||
			fail "b2bua.service was enabled at installation"
		log "ok: b2bua.service installed, not enabled"
	fi
}

# The test's own exit: a package it installed is purged whatever happened.
_package_exit() {
	local rc=$?
	if [ -n "${_PKG_INSTALLED:-}" ] && package_ours; then
		package_purge || log "purging b2bua at exit failed: see $T/purge.log"
	fi
	(exit "$rc")
	_cleanup
}
trap _package_exit EXIT

# ------------------------------------------------------------ the installed daemon

# package_config: $CONF from the installed configuration, with what must
# differ on this machine; each key changed must have been set once.
package_config() {
	local key
	sed -e "s|^workers = .*|workers = $CFG_WORKERS;|" \
	    -e "s|^drain_timeout = .*|drain_timeout = $CFG_DRAIN_TIMEOUT;|" \
	    -e "s|^listen = .*|listen = \"$ADDR\";|" \
	    -e "s|^advertise = .*|advertise = \"$ADDR\";|" \
	    -e "s|^cli_socket = .*|cli_socket = \"$CLI_SOCK\";|" \
	    -e "s|^cdr_spool_dir = .*|cdr_spool_dir = \"$T/spool\";|" \
	    -e "s|^redis_address = .*|redis_address = \"unix:$REDIS_SOCK\";|" \
	    -e "s|^trusted = .*|trusted = ( \"$ADDR\" );|" \
	    -e "s|sip:127\.0\.0\.1:5080;|sip:$ADDR:$UAS_PORT;|" \
	    "$ROOT/etc/b2bua/b2bua.conf" >"$CONF" || fail "cannot derive $CONF"
	echo "node_id = \"e2e-package\";" >>"$CONF"
	for key in workers drain_timeout listen advertise cli_socket cdr_spool_dir \
		redis_address trusted node_id; do
		assert_eq 1 "$(grep -c "^$key = " "$CONF")" "derived config: $key set once"
	done
	assert_eq 1 "$(grep -c "sip:$ADDR:$UAS_PORT;" "$CONF")" "derived config: route to the UAS"
}

# ------------------------------------------------------------ the test

package_copy_tree
package_build
package_lint
package_contents
package_install
[ -z "$ROOT" ] && package_check_scripts

B2BUA=$ROOT/usr/sbin/b2bua
CLI=$ROOT/usr/sbin/b2bua-cli
out=$("$B2BUA" -t -c "$ROOT/etc/b2bua/b2bua.conf" 2>&1) ||
	fail "installed b2bua -t on the installed configuration: $out"
assert_eq "b2bua: configuration $ROOT/etc/b2bua/b2bua.conf is valid" "${out% (*}" "installed b2bua -t"
if [ -z "$ROOT" ]; then
	# Without -c, b2bua reads the installed configuration.
	out=$("$B2BUA" -t 2>&1) || fail "installed b2bua -t (default configuration): $out"
	assert_eq "b2bua: configuration /etc/b2bua/b2bua.conf is valid" "${out% (*}" \
		"installed b2bua -t without -c"
fi

redis_start
package_config
b2b_start
uas_start uas uas_basic -m 1
uac_run uac uac_basic -m 1 -d 500
uas_wait uas
assert_sipp_ok uac 1
assert_sipp_ok uas 1
wait_cdrs 1
assert_cdr 0 "a_call_id=$(call_ids "$T/uac.msg" sent)" "b_call_id=$(call_ids "$T/uas.msg" recv)" \
	"disposition=ANSWERED" "sip_code=200" "hangup_by=caller" "host=e2e-package"
assert_eq "$(cdr_get 0 id)" "$(cli cdr tail 1 --json | jq -r '.[0].id')" \
	"installed b2bua-cli cdr tail: the call's CDR"
b2b_stop 10 || fail "the installed b2bua did not stop cleanly ($?)"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"

# ------------------------------------------------------------ purge

if [ -n "${_PKG_INSTALLED:-}" ]; then
	package_purge || fail "dpkg --purge b2bua failed"
	_PKG_INSTALLED=
	assert_eq "" "$(dpkg-query -W -f='${db:Status-Status}' b2bua 2>/dev/null |
		grep -v '^not-installed$')" "dpkg knows no b2bua after the purge"
	# Every file of the package, its own directories, and its state.
	for f in $(grep -v '/$' "$T/contents.txt") /etc/b2bua /usr/share/doc/b2bua /var/lib/b2bua; do
		[ ! -e "$f" ] || fail "$f is still there after dpkg --purge"
	done
	! dpkg-statoverride --list /etc/b2bua/b2bua.conf >/dev/null ||
		fail "the statoverride of /etc/b2bua/b2bua.conf outlived the purge"
	log "ok: dpkg --purge removed the package's files, /etc/b2bua and /var/lib/b2bua"
fi
log "PASS"
