/*
 * cli_proto — the wire protocol between b2bua-cli and the daemon's
 * management process.
 *
 * Design note.  One Unix stream socket (config key cli_socket), one request
 * per connection, plain text, so that `socat - UNIX:/run/b2bua/b2bua.sock`
 * is a usable client too:
 *
 *   client → server   one line: the command words and options separated by
 *                     single spaces, with "--json" as the last word when
 *                     the client wants JSON, then "\n":
 *                         show calls --json\n
 *                         user add alice --password s3cr%20t --max-calls 2\n
 *                     Every word is percent-encoded (CLI_ENCODE_BYTE): '%',
 *                     bytes up to and including ' ', DEL and bytes >= 0x80
 *                     travel as "%XX" (hex, either case on input), so a
 *                     password or display text with spaces, or one that
 *                     looks like an option, is still one word.  Words made
 *                     of plain characters read as themselves.  An option
 *                     that takes a value (--password, --display,
 *                     --max-calls, --always, --busy, --no-answer,
 *                     --timeout) takes the next word whatever it is; no
 *                     value is empty.  --clear and --long stand alone.
 *                     At most CLI_REQUEST_MAX bytes including the
 *                     newline.  The client may half-close after it; EOF
 *                     also ends the line.  No line within 1 s: the server
 *                     answers "1 no request within 1 s" and hangs up.
 *
 *   server → client   a status line "<status> <text>\n", then the body,
 *                     then the server closes the connection:
 *                         0 ok\n<body>           body is the answer
 *                         2 <reason>\n<usage>    usage error; body is the usage
 *                         1 <reason>\n           any other error (e.g. the
 *                                                peer's uid is not allowed,
 *                                                "no such user bob", "redis
 *                                                unix:/run/redis.sock: ...")
 *
 * Commands (the table is cli/cli_cmd.c; `help` lists them for people):
 *   show workers   text table, or a JSON array of
 *                  {index, pid, port, active_calls, uptime_s, restarts}
 *                  (pid 0 and uptime_s 0 for a worker that is not running)
 *   show calls     text table (FORWARD: the forward target or "-"; then
 *                  A_TRANSPORT and B_TRANSPORT, "-" before a B-leg), or a
 *                  JSON array of
 *                  {id, caller, callee, state, held_by, age_s, worker,
 *                   forward_target, a_call_id, b_call_id, a_transport,
 *                   b_transport}
 *                  a_transport and b_transport are "udp", "tcp" or "tls"
 *                  (shm_transport_name); b_transport is null before a
 *                  B-leg was tried.
 *                  state is one of TRYING RINGING ANSWERED HELD FORWARDING
 *                  ENDING; held_by is "caller" or "callee" when state is
 *                  HELD, else null; forward_target and b_call_id are null
 *                  when empty.  id is a JSON *string* of decimal digits:
 *                  call ids use all 64 bits, and JSON numbers go through
 *                  doubles in jq and JavaScript (exact only up to 2^53).
 *   show stats     text, or a JSON object
 *                  {node_id, calls_total, calls_active, calls_answered,
 *                   calls_failed, final_codes: {"486": n, ...}, msgs_in,
 *                   msgs_out, rate_limited_invite, rate_limited_register,
 *                   untrusted_refused, overload_refused, draining}
 *                  final_codes holds only codes sent at least once, summed
 *                  over workers; draining is a boolean; rate_limited_* count
 *                  requests refused by the per-source rate limits,
 *                  untrusted_refused INVITEs the admission policy refused,
 *                  overload_refused the new INVITEs shed with a stateless 503
 *                  by overload control (they are in no other figure).
 *                  Also cdr_spooled (CDRs in the workers' spools that Redis,
 *                  and with redis_wait_replicas its replicas, has not
 *                  confirmed yet: a gauge) and cdr_unreplicated (CDRs Redis
 *                  stored that a WAIT found on too few replicas, each once).
 *   user add NAME --password PW [--display TEXT] [--max-calls N]
 *   user passwd NAME --password PW
 *                  store HA1s for the configured realm (never PW itself);
 *                  body "user NAME added\n" / "user NAME password changed\n".
 *                  The server needs the password: --password-stdin and
 *                  the random password are the client's business.  add
 *                  fails with status 1 when NAME exists, passwd when not.
 *   user set NAME [--display TEXT] [--max-calls N]
 *                  change the given fields of an existing subscriber (at
 *                  least one); body "user NAME changed\n"; status 1 "no
 *                  such user NAME".
 *   user del NAME, user enable NAME, user disable NAME
 *                  body "user NAME deleted|enabled|disabled\n".
 *   user show NAME text, or a JSON object
 *                  {user, display, enabled, max_calls, created_ms,
 *                   registrations: [{contact, source, transport,
 *                   expires_in_s, expires_ms, registered_ms, user_agent,
 *                   call_id, cseq, host, worker}]}
 *                  with only unexpired registrations, newest first.
 *   user list      text table, or a JSON array, by name, of
 *                  {user, display, enabled, max_calls, registrations}
 *                  where registrations counts the unexpired ones.
 *                  NAME is 1..CLI_USER_NAME_MAX of [A-Za-z0-9._+-], not
 *                  starting with '-'; PW and TEXT are 1..CLI_VALUE_MAX
 *                  bytes without control characters; a bad one is a usage
 *                  error (status 2).  An unknown NAME is status 1 "no such
 *                  user NAME".  Subscribers live in Redis (keys in
 *                  docs/redis-schema.md); Redis unreachable is status 1
 *                  "redis <address>: <reason>".
 *   user forward NAME [--always TARGET] [--busy TARGET] [--no-answer TARGET]
 *                  [--timeout SECONDS]
 *   user forward NAME --clear
 *                  set fields of the user hash (fwd_always, fwd_busy,
 *                  fwd_noanswer, fwd_noanswer_timeout), or delete all four;
 *                  at least one option, --clear alone.  TARGET is a NAME of
 *                  our domain or a SIP URI (cli_proto_target_ok), SECONDS
 *                  1..CLI_FWD_TIMEOUT_MAX.  Body "user NAME forwarding
 *                  set|cleared\n"; status 1 "no such user NAME".  `user
 *                  show` adds fwd_always, fwd_busy, fwd_noanswer (null when
 *                  unset) and fwd_noanswer_timeout (an integer, null when
 *                  the config's no_answer_timeout applies).
 *   cdr tail [N]   the N (default CLI_CDR_TAIL_DEFAULT, 1..CLI_CDR_TAIL_MAX)
 *                  latest CDRs of the stream <redis_prefix><cdr_stream>,
 *                  oldest first: a text table, or a JSON array of objects
 *                  holding every field of the entry as a string (id,
 *                  a_call_id, b_call_id, caller, callee, answered_by,
 *                  forwarded_to, start_ms, ring_ms, answer_ms, end_ms,
 *                  billable_ms, disposition, sip_code, hangup_by, host,
 *                  worker, cause, closed_by, a_transport, b_transport)
 *                  plus "stream_id" (the entry's id in the stream).
 *   call kill ID   ID as `show calls` gives it.  The management process asks
 *                  the owning worker (a CTL_KILL_CALL control request,
 *                  b2bua/ctl.h) and waits until the call has left the
 *                  table: body "call ID killed\n".  Status 1 for "no such
 *                  call ID", "worker N did not answer", "worker N is not
 *                  running", a call still in the table 2 s later.
 *   show calls --long, show call ID
 *                  text: one block per call with both legs' Call-IDs, tags
 *                  and remote targets, hold state and times; JSON: the
 *                  objects of `show calls` plus start_ms, ring_ms,
 *                  answer_ms (0: not yet) and legs "a" and "b", each
 *                  {call_id, local_tag, remote_tag, remote_target,
 *                  transport} (null for empty strings; transport null for
 *                  a B-leg not tried yet).  `show call ID` answers one object;
 *                  status 1 "no such call ID".
 *   reload         the same as SIGHUP: the master re-reads the configuration
 *                  file and every process takes what changed (b2bua/master.c,
 *                  b2bua/config_reload.h).  Text "applied: KEY...\n
 *                  restart_needed: KEY...\n" ("none" for an empty list), or
 *                  a JSON object {applied: [KEY...], restart_needed: [KEY...]}.
 *                  Status 1 with "FILE:LINE: KEY: why: nothing changed" for
 *                  a bad file, "a reload is in progress..." while one is,
 *                  and "reload: in force in the master (applied: ...); not
 *                  acknowledged within 2 s: worker N; refused: ..." when a
 *                  process did not take it.
 *   help           the usage text (cli_cmd_usage) as the body.
 *
 * The client is plain libc: it validates the words, sends them and copies
 * the body out.  JSON is produced by the server (jansson) only.  The one
 * thing the client adds is a password it made up itself (see above).
 */
#ifndef B2BUA_CLI_PROTO_H
#define B2BUA_CLI_PROTO_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Where the client looks when neither -s nor the environment names a socket. */
#define CLI_DEFAULT_SOCKET "/run/b2bua/b2bua.sock"
#define CLI_SOCKET_ENV     "B2BUA_SOCKET"

/* The word that asks for JSON; sent last in the request line. */
#define CLI_JSON_FLAG      "--json"

/* Longest request line, newline included: room for a password and a
 * display text of CLI_VALUE_MAX bytes each, every byte encoded. */
#define CLI_REQUEST_MAX    2048

/* Most words (command words, options and their values) in a request. */
#define CLI_MAX_WORDS      12

/* Subscriber names: 1..CLI_USER_NAME_MAX of CLI_USER_NAME_CHARS. */
#define CLI_USER_NAME_MAX   64
#define CLI_USER_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-"

/* Longest --password or --display value in bytes (no control characters). */
#define CLI_VALUE_MAX       128

/* Highest --max-calls (0 means no limit). */
#define CLI_MAX_CALLS_MAX   1000000

/* Forward targets: a NAME, or a SIP URI of at most CLI_TARGET_MAX bytes (what
 * the call table's forward_target holds); --timeout 1..CLI_FWD_TIMEOUT_MAX s. */
#define CLI_TARGET_MAX      127
#define CLI_FWD_TIMEOUT_MAX 600

/* `cdr tail [N]`: how many CDRs by default, and at most. */
#define CLI_CDR_TAIL_DEFAULT 10
#define CLI_CDR_TAIL_MAX     1000

/* Length of the password the client makes up when none is given. */
#define CLI_RANDOM_PASSWORD_LEN 16

/* Does byte c travel as "%XX" in a request word? */
#define CLI_ENCODE_BYTE(c) \
	((unsigned char)(c) <= 0x20 || (unsigned char)(c) >= 0x7f || (c) == '%')

/*
 * The checks client and server both make, written once so that they cannot
 * disagree.  Each returns 1 when the word is acceptable.
 */

/* NAME: 1..CLI_USER_NAME_MAX of CLI_USER_NAME_CHARS, not starting with '-' (an option). */
static inline int cli_proto_name_ok(const char *name)
{
	size_t n = strlen(name);

	return n >= 1 && n <= CLI_USER_NAME_MAX && name[0] != '-' &&
	       strspn(name, CLI_USER_NAME_CHARS) == n;
}

/* Plain decimal digits (no sign, no spaces) from min to max: 1 and *out. */
static inline int cli_proto_number(const char *s, unsigned long long min,
				   unsigned long long max, unsigned long long *out)
{
	size_t n = strlen(s);
	unsigned long long v;
	char *end;

	if (n == 0 || n > 20 || strspn(s, "0123456789") != n)
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end != '\0' || v < min || v > max)
		return 0;
	*out = v;
	return 1;
}

/*
 * A forward TARGET: a NAME (a user of our domain), or a SIP URI: "sip:"
 * (any case) and a host part, at most CLI_TARGET_MAX printable ASCII bytes
 * without spaces, quotes or angle brackets (it goes into a Request-URI).
 */
static inline int cli_proto_target_ok(const char *t)
{
	size_t n = strlen(t);
	const char *at;

	if (strncasecmp(t, "sip:", 4) != 0)
		return cli_proto_name_ok(t);
	if (n <= 4 || n > CLI_TARGET_MAX)
		return 0;
	for (size_t i = 4; i < n; i++) {
		unsigned char c = (unsigned char)t[i];

		if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '"')
			return 0;
	}
	at = strrchr(t + 4, '@');
	return at == NULL || at[1] != '\0';
}

/*
 * A call ID as `show calls` prints it: NODE-wWORKER-EPOCH-N (worker/b2b.c,
 * b2b_make_id): the node id ([A-Za-z0-9-]), "w" and the worker index, the
 * worker's start time in hex, the call's number; at most CLI_CALL_ID_MAX
 * bytes.  The same id is in the daemon's log and is the CDR's id.
 */
#define CLI_CALL_ID_MAX 79

static inline int cli_proto_call_id_ok(const char *id)
{
	size_t n = strlen(id), i = n, digits;

	if (n == 0 || n > CLI_CALL_ID_MAX)
		return 0;
	/* from the end: N (decimal), EPOCH (hex), wWORKER, then NODE */
	for (digits = 0; i > 0 && id[i - 1] >= '0' && id[i - 1] <= '9'; i--)
		digits++;
	if (digits == 0 || i == 0 || id[--i] != '-')
		return 0;
	for (digits = 0; i > 0 && strchr("0123456789abcdef", id[i - 1]) && id[i - 1]; i--)
		digits++;
	if (digits == 0 || i == 0 || id[--i] != '-')
		return 0;
	for (digits = 0; i > 0 && id[i - 1] >= '0' && id[i - 1] <= '9'; i--)
		digits++;
	if (digits == 0 || i < 3 || id[i - 1] != 'w' || id[i - 2] != '-')
		return 0;
	i -= 2;
	return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-") >= i;
}

/* Status codes of the response line; also the client's exit codes. */
#define CLI_STATUS_OK      0
#define CLI_STATUS_ERROR   1
#define CLI_STATUS_USAGE   2

#endif
