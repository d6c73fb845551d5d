#!/bin/bash
#
# man_check — the man pages in docs/man/ render without a warning and
# document everything the code offers.
#
# Design note.  The pages are written by hand (roff, man(7) macros), so
# nothing generates them from the code: this test is what keeps them in
# step.  It fails when
#   - `groff -ww -man -Tutf8 -z` or `man --warnings -l` says anything about
#     a page (what lintian checks in the package, and what a reader sees);
#   - a key of the table in b2bua/config_keys.c is not the tag of an entry
#     (.TP/.TQ) in b2bua.conf.5;
#   - a command of the table in cli/cli_cmd.c, an option of cli_options,
#     or an option of the client itself (cli/cli_client.c, --json) is not
#     the tag of an entry in b2bua-cli.8;
#   - an option of the getopt string in b2bua/main.c is not the tag of an
#     entry in b2bua.8;
#   - b2bua -t refuses a configuration example of b2bua.conf.5 (an .EX
#     block after a comment line "config example"), when b2bua is built;
#   - the keys whose entries in b2bua.conf.5 say "Restart needed." are not
#     exactly those of its RELOAD list, or (once b2bua/config_reload.c
#     exists) not exactly those of its config_restart_only[] table.
# The lists are read from the sources, never written here, so a new key,
# command or option fails this test until its page documents it.  A list
# that reads back (almost) empty fails too: a changed table layout must not
# make the test pass with nothing checked.
#
# A tag is the line after .TP or .TQ, with its macro name, quotes and font
# escapes taken off; an item is documented when a tag starts with it
# followed by a space, a comma or the end (".BR \-h \", \" \-\-help" documents
# both -h and --help; ".BI \"user add \" name" documents "user add").

top=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
man_dir=$top/docs/man
pages=("$man_dir/b2bua.8" "$man_dir/b2bua-cli.8" "$man_dir/b2bua.conf.5")
failures=0

fail() {
	echo "man_check: FAIL: $*" >&2
	failures=$((failures + 1))
}

# Exit codes follow automake: 0 pass, 1 fail, 77 skip.
for tool in groff man; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "man_check: SKIP: $tool not found (Debian packages groff-base, man-db)"
		exit 77
	fi
done

# ------------------------------------------------------------ rendering

# Every word groff or man prints about a page is a warning: -z discards the
# output itself, and man's rendered page goes to /dev/null.
check_render() {
	local page=$1 out

	out=$(LC_ALL=C.UTF-8 groff -ww -man -Tutf8 -z "$page" 2>&1)
	[ -z "$out" ] || fail "groff -ww warns about $page:"$'\n'"$out"
	out=$(LC_ALL=C.UTF-8 MANROFFSEQ='' man --warnings -l "$page" 2>&1 >/dev/null)
	[ -z "$out" ] || fail "man --warnings -l warns about $page:"$'\n'"$out"
	# As lintian runs it on the package's pages (groff-message).
	out=$(env -i PATH="$PATH" LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=120 \
		man --warnings -E UTF-8 -l -Tutf8 -Z "$page" 2>&1 >/dev/null)
	[ -z "$out" ] || fail "man as lintian runs it warns about $page:"$'\n'"$out"
}

# ------------------------------------------------------------ tags

# The tags of a page, one a line, as plain text.
page_tags() {
	awk 'tag { print; tag = 0; next } /^\.(TP|TQ)([ \t]|$)/ { tag = 1 }' "$1" |
		sed -E -e 's/^\.[A-Za-z]+[ \t]*//' -e 's/\\f(\[[A-Za-z]*\]|\(..|.)//g' \
			-e 's/\\-/-/g' -e 's/\\(c|&)//g' -e 's/\\\(dq//g' -e 's/"//g' \
			-e 's/[ \t]+/ /g' -e 's/^ //'
}

# Is `item` documented among the tags in file $2?
has_tag() {
	local item=$1 tags=$2

	awk -v item="$item" '
		{
			n = split($0, alt, ",")
			for (i = 1; i <= n; i++) {
				t = alt[i]
				sub(/^ +/, "", t)
				if (t == item || index(t, item " ") == 1) { found = 1; exit }
			}
		}
		END { exit !found }' "$tags"
}

# Check each item of a list (one a line in file $3) against page $1's tags;
# $2 says what the items are, for messages; $4 is the least count expected.
check_items() {
	local page=$1 what=$2 list=$3 least=$4 tags n item

	tags=$(mktemp)
	page_tags "$page" >"$tags"
	n=$(grep -c . "$list")
	if [ "$n" -lt "$least" ]; then
		fail "read only $n $what from the sources (at least $least expected):" \
			"has the table's layout changed? Fix tests/man_check.sh"
	fi
	while IFS= read -r item; do
		has_tag "$item" "$tags" ||
			fail "$(basename "$page") does not document '$item'" \
				"(one of the $what; no .TP entry is tagged with it)"
	done <"$list"
	rm -f "$tags"
	echo "man_check: $(basename "$page"): $n $what checked"
}

# ------------------------------------------------------------ the sources' lists

# Keys of `config_keys[]` in b2bua/config_keys.c: { "name", loader }.
config_keys() {
	awk '/config_keys\[\][ \t]*=/ { on = 1; next } on && /^\};/ { on = 0 } on' \
		"$top/b2bua/config_keys.c" |
		sed -nE 's/^[ \t]*\{[ \t]*"([A-Za-z0-9_]+)".*/\1/p'
}

# Commands of `cli_cmds[]` in cli/cli_cmd.c: { CLI_CMD_X, { "w0", "w1" | NULL }, ...
cli_commands() {
	awk '/cli_cmds\[[A-Za-z_]*\][ \t]*=/ { on = 1; next } on && /^\};/ { on = 0 } on' \
		"$top/cli/cli_cmd.c" |
		sed -nE -e 's/^[ \t]*\{[ \t]*CLI_CMD_[A-Z0-9_]+,[ \t]*\{[ \t]*"([a-z-]+)",[ \t]*"([a-z-]+)".*/\1 \2/p' \
			-e 's/^[ \t]*\{[ \t]*CLI_CMD_[A-Z0-9_]+,[ \t]*\{[ \t]*"([a-z-]+)",[ \t]*NULL.*/\1/p'
}

# Options of b2bua-cli: `cli_options[]` in cli/cli_cmd.c, the client's own
# (strcmp(argv[i], "-s") in cli/cli_client.c) and CLI_JSON_FLAG.
cli_opts() {
	awk '/cli_options\[[A-Za-z_]*\][ \t]*=/ { on = 1; next } on && /^\};/ { on = 0 } on' \
		"$top/cli/cli_cmd.c" | sed -nE 's/^[ \t]*\{[ \t]*"(-[A-Za-z0-9-]+)".*/\1/p'
	grep -oE 'strcmp\(argv\[i\], "-[A-Za-z0-9-]+"\)' "$top/cli/cli_client.c" |
		sed -E 's/.*"(.*)".*/\1/' | sort -u
	sed -nE 's/^#define[ \t]+CLI_JSON_FLAG[ \t]+"(-[A-Za-z0-9-]+)".*/\1/p' \
		"$top/cli/cli_proto.h"
}

# Options of b2bua: the letters of getopt(argc, argv, "...") in b2bua/main.c.
daemon_opts() {
	sed -nE 's/.*getopt\(argc, argv, "([^"]*)"\).*/\1/p' "$top/b2bua/main.c" |
		tr -d ':' | grep -o . | sed 's/^/-/'
}

# ------------------------------------------------------------ restart-only keys

# Keys whose entry in b2bua.conf.5 has the line "Restart needed.", sorted.
page_restart_keys() {
	awk '
		/^\.(TP|TQ)([ \t]|$)/ { tag = 1; key = ""; next }
		tag { key = $0; sub(/^\.[A-Za-z]+[ \t]+/, "", key); tag = 0; next }
		/^\.(SH|SS)([ \t]|$)/ { key = "" }
		/^Restart needed\.$/ && key != "" { print key }' "$1" | sort -u
}

# Keys of the RELOAD section's list, between its two comment lines, sorted.
page_reload_list() {
	awk '/^\.\\" restart-only keys/ { on = 1; next } /^\.\\" end of restart-only keys/ { on = 0 }
		on && /^\.BR? / { print $2 }' "$1" | sort -u
}

# Keys of config_restart_only[] in b2bua/config_reload.c, sorted.
source_restart_keys() {
	awk '/config_restart_only\[\][ \t]*=/ { on = 1; next } on && /^\};/ { on = 0 } on' \
		"$top/b2bua/config_reload.c" |
		sed -nE 's/^[ \t]*\{[ \t]*"([A-Za-z0-9_]+)".*/\1/p' | sort -u
}

# Two sorted lists ($3, $4) must be equal; $1 and $2 name them.  1 when not.
check_same() {
	local only1 only2

	only1=$(comm -23 <(echo "$3") <(echo "$4") | tr '\n' ' ' | sed 's/ $//')
	only2=$(comm -13 <(echo "$3") <(echo "$4") | tr '\n' ' ' | sed 's/ $//')
	[ -z "$only1" ] && [ -z "$only2" ] && return 0
	fail "restart-only keys differ: only in $1: ${only1:-none}; only in $2: ${only2:-none}"
	return 1
}

check_restart_keys() {
	local page=$1 marked listed

	marked=$(page_restart_keys "$page")
	listed=$(page_reload_list "$page")
	[ -n "$listed" ] || fail "$(basename "$page"): no RELOAD list between its comment lines"
	check_same "the entries marked 'Restart needed.'" "the RELOAD list" "$marked" "$listed"
	if [ -f "$top/b2bua/config_reload.c" ]; then
		local src

		src=$(source_restart_keys)
		[ -n "$src" ] || fail "read no config_restart_only[] from b2bua/config_reload.c:" \
			"has its layout changed? Fix tests/man_check.sh"
		check_same "the entries marked 'Restart needed.'" \
			"b2bua/config_reload.c" "$marked" "$src" &&
			echo "man_check: $(basename "$page"): restart-only keys match" \
				"b2bua/config_reload.c"
	else
		echo "man_check: $(basename "$page"): restart-only keys: b2bua/config_reload.c" \
			"not there, entries checked against the RELOAD list only"
	fi
}

# ------------------------------------------------------------ configuration examples

# Each example of b2bua.conf.5 must be a file the real parser accepts.
check_examples() {
	local page=$1 b2bua=${top_builddir:-$top}/b2bua/b2bua dir n=0 bad=0 out

	if [ ! -x "$b2bua" ]; then
		echo "man_check: $b2bua not built: configuration examples not checked"
		return
	fi
	dir=$(mktemp -d)
	awk -v dir="$dir" '
		/^\.\\" config example/ { want = 1; n++; next }
		want && /^\.EX/ { on = 1; next }
		on && /^\.EE/ { on = 0; want = 0; next }
		on { print > (dir "/example" n ".conf") }' "$page"
	for conf in "$dir"/example*.conf; do
		[ -f "$conf" ] || continue
		n=$((n + 1))
		sed -i -e 's/\\-/-/g' -e 's/\\(dq/"/g' -e 's/\\&//g' -e 's/\\e/\\/g' "$conf"
		if ! out=$("$b2bua" -t -c "$conf" 2>&1); then
			fail "$(basename "$page"): b2bua -t refuses example $n: $out"
			bad=1
		fi
	done
	rm -rf "$dir"
	if [ "$n" -lt 2 ]; then
		fail "$(basename "$page"): $n configuration examples found (2 expected)"
	elif [ "$bad" -eq 0 ]; then
		echo "man_check: $(basename "$page"): $n configuration examples accepted by b2bua -t"
	fi
}

# ------------------------------------------------------------ main

for page in "${pages[@]}"; do
	if [ -f "$page" ]; then
		check_render "$page"
	else
		fail "$page is missing"
	fi
done

lists=$(mktemp -d)
trap 'rm -rf "$lists"' EXIT
config_keys >"$lists/keys"
cli_commands >"$lists/commands"
cli_opts >"$lists/cli_opts"
daemon_opts >"$lists/daemon_opts"

[ -f "$man_dir/b2bua.conf.5" ] && check_items "$man_dir/b2bua.conf.5" "config keys" "$lists/keys" 40
[ -f "$man_dir/b2bua-cli.8" ] && check_items "$man_dir/b2bua-cli.8" "commands" "$lists/commands" 15
[ -f "$man_dir/b2bua-cli.8" ] && check_items "$man_dir/b2bua-cli.8" "options" "$lists/cli_opts" 12
[ -f "$man_dir/b2bua.conf.5" ] && check_restart_keys "$man_dir/b2bua.conf.5"
[ -f "$man_dir/b2bua.conf.5" ] && check_examples "$man_dir/b2bua.conf.5"
[ -f "$man_dir/b2bua.8" ] && check_items "$man_dir/b2bua.8" "options" "$lists/daemon_opts" 4

if [ "$failures" -gt 0 ]; then
	echo "man_check: $failures problem(s)" >&2
	exit 1
fi
echo "man_check: PASS"
