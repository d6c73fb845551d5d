#!/bin/bash
#
# deregister — call flow 2: the three ways to remove bindings, each
# authenticated as in flow 1, and the invalid "Contact: *" forms.
#
#   1. Expires: 0 on one Contact: that binding goes, the AOR's others stay
#      and the 200 lists only them;
#   2. Contact: <...>;expires=0 (beside an Expires: 3600 header, which the
#      parameter overrides): the last binding goes, the key with it, and the
#      200 lists no Contact;
#   3. Contact: * with Expires: 0, from a UA that holds no binding itself:
#      every binding of the AOR goes;
#   4. Contact: * with Expires: 3600, or with no Expires at all: 400, and
#      the bindings stay.
# Each user agent is a sipp run on a port of its own; a de-registration
# comes from the port (hence the Contact) that registered.

. "$(dirname "$0")/lib.sh"

PREFIX=b2bua:
LOC=${PREFIX}loc:alice


# reg NAME PORT EXPIRES-LINE CONTACT-PARAMS: alice's UA at $ADDR:PORT.
reg() {
	uac_run "$1" reg_auth -p "$2" -s alice -ap secret -m 1 -key exp_hdr "$3" -key cparams "$4"
}

# star NAME PORT EXPIRES-LINE: "Contact: *" from $ADDR:PORT.
star() {
	uac_run "$1" reg_star -p "$2" -s alice -ap secret -m 1 -key exp_hdr "$3"
}

# contacts NAME: the Contact headers of NAME's final 200, sorted, one line.
contacts() { msg_header "$T/$1.msg" recv 200 Contact | sort | xargs; }

# bindings: alice's bound contacts in Redis, sorted, one line.
bindings() { rcli HKEYS "$LOC" | sort | xargs; }

c() { echo "sip:alice@$ADDR:$1"; }

redis_start
registrar_config
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"
add_user alice secret

# ---------------------------------------------------------------- 1. Expires: 0
reg r1 5201 "Expires: 3600" ""
reg r2 5202 "Expires: 3600" ""
assert_eq "$(c 5201) $(c 5202)" "$(bindings)" "two bindings"
reg d1 5201 "Expires: 0" ""
assert_count "$T/d1.msg" recv 401 1
assert_count "$T/d1.msg" recv 200 1
assert_eq "<$(c 5202)>;expires=3600" "$(contacts d1 | sed 's/expires=359[0-9]/expires=3600/')" \
	"Expires: 0: the 200 lists only the binding left"
assert_eq "$(c 5202)" "$(bindings)" "Expires: 0 removed its binding only"
assert_grep "REGISTER 'alice' from $ADDR:5201: 1 bindings" "$T/b2bua.log" \
	"log: one binding left"

# ---------------------------------------------------------------- 2. Contact ;expires=0
reg d2 5202 "Expires: 3600" ";expires=0"
assert_eq "<$(c 5202)>;expires=0" "$(msg_header "$T/d2.msg" sent REGISTER Contact | sort -u)" \
	"d2 sent Contact ;expires=0"
assert_eq 3600 "$(msg_header "$T/d2.msg" sent REGISTER Expires | sort -u)" \
	"d2 sent it beside Expires: 3600"
assert_count "$T/d2.msg" recv 200 1
assert_eq "" "$(contacts d2)" "Contact ;expires=0: the 200 lists no contact"
assert_eq 0 "$(rcli EXISTS "$LOC")" "Contact ;expires=0: the last binding and its key are gone"
assert_grep "REGISTER 'alice' from $ADDR:5202: 0 bindings" "$T/b2bua.log" \
	"log: no binding left"

# ---------------------------------------------------------------- 3. Contact: * with Expires: 0
reg r3 5203 "Expires: 3600" ""
reg r4 5204 "Expires: 3600" ""
assert_eq "$(c 5203) $(c 5204)" "$(bindings)" "two bindings again"
star d3 5205 "Expires: 0"
assert_count "$T/d3.msg" sent REGISTER 2
assert_count "$T/d3.msg" recv 200 1
assert_eq "*" "$(msg_header "$T/d3.msg" sent REGISTER Contact | sort -u)" "d3 sent Contact: *"
assert_eq "" "$(contacts d3)" "Contact: *: the 200 lists no contact"
assert_eq 0 "$(rcli EXISTS "$LOC")" "Contact: * removed every binding"

# ---------------------------------------------------------------- 4. Contact: * without Expires: 0
reg r5 5206 "Expires: 3600" ""
star bad1 5207 "Expires: 3600"
assert_count "$T/bad1.msg" recv 400 1
assert_count "$T/bad1.msg" recv 200 0
star bad2 5207 "X-Expires: none"
assert_eq "" "$(msg_header "$T/bad2.msg" sent REGISTER Expires)" "bad2 sent no Expires"
assert_count "$T/bad2.msg" recv 400 1
assert_count "$T/bad2.msg" recv 200 0
assert_eq "$(c 5206)" "$(bindings)" "400: the binding stays"
pttl=$(rcli PTTL "$LOC")
[ "$pttl" -gt 3590000 ] || fail "PTTL of $LOC is $pttl after the refused Contact: *"
log "ok: PTTL $pttl ms"

assert_no_grep "(error|crit)" "$T/b2bua.log" "no errors in the daemon's log"
log "PASS"
