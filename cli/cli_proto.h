/*
 * cli_proto — the wire protocol between b2bua-cli and the master.
 *
 * Design note.  One Unix stream socket (config key cli_socket), one request
 * per connection, plain text, so that `socat - UNIX:/run/b2bua/b2bua.sock`
 * is a usable client too:
 *
 *   client → server   one line: the command words separated by single
 *                     spaces, with "--json" as the last word when the
 *                     client wants JSON, then "\n":
 *                         show calls --json\n
 *                     At most CLI_REQUEST_MAX bytes including the newline.
 *                     The client may half-close after it; EOF also ends
 *                     the line.  No line within 1 s: the server answers
 *                     "1 no request within 1 s" and hangs up.
 *
 *   server → client   a status line "<status> <text>\n", then the body,
 *                     then the server closes the connection:
 *                         0 ok\n<body>           body is the answer
 *                         2 <reason>\n<usage>    usage error; body is CLI_USAGE
 *                         1 <reason>\n           any other error (e.g. the
 *                                                peer's uid is not allowed)
 *
 * Commands (CLI_USAGE lists them for people):
 *   show workers   text table, or a JSON array of
 *                  {index, pid, port, active_calls, uptime_s, restarts}
 *                  (pid 0 and uptime_s 0 for a worker that is not running)
 *   show calls     text table, or a JSON array of
 *                  {id, caller, callee, state, held_by, age_s, worker,
 *                   forward_target, a_call_id, b_call_id}
 *                  state is one of TRYING RINGING ANSWERED HELD FORWARDING
 *                  ENDING; held_by is "caller" or "callee" when state is
 *                  HELD, else null; forward_target and b_call_id are null
 *                  when empty.  id is a JSON *string* of decimal digits:
 *                  call ids use all 64 bits, and JSON numbers go through
 *                  doubles in jq and JavaScript (exact only up to 2^53).
 *   show stats     text, or a JSON object
 *                  {node_id, calls_total, calls_active, calls_answered,
 *                   calls_failed, final_codes: {"486": n, ...}, msgs_in,
 *                   msgs_out, draining}
 *                  final_codes holds only codes sent at least once, summed
 *                  over workers; draining is a boolean.
 *   help           CLI_USAGE as the body.
 *
 * The client is plain libc: it validates the words, sends them and copies
 * the body out.  JSON is produced by the server (jansson) only.
 */
#ifndef B2BUA_CLI_PROTO_H
#define B2BUA_CLI_PROTO_H

/* Where the client looks when neither -s nor the environment names a socket. */
#define CLI_DEFAULT_SOCKET "/run/b2bua/b2bua.sock"
#define CLI_SOCKET_ENV     "B2BUA_SOCKET"

/* The word that asks for JSON; sent last in the request line. */
#define CLI_JSON_FLAG      "--json"

/* Longest request line, newline included. */
#define CLI_REQUEST_MAX    256

/* Status codes of the response line; also the client's exit codes. */
#define CLI_STATUS_OK      0
#define CLI_STATUS_ERROR   1
#define CLI_STATUS_USAGE   2

#define CLI_USAGE \
	"usage: b2bua-cli [-s SOCKET] COMMAND [--json]\n" \
	"\n" \
	"commands:\n" \
	"  show workers   worker processes: pid, own SIP port, active calls, uptime, restarts\n" \
	"  show calls     calls in progress: id, caller, callee, state, age, worker\n" \
	"  show stats     call and message counters, final codes sent, draining\n" \
	"  help           this text\n" \
	"\n" \
	"options:\n" \
	"  -s SOCKET      the daemon's CLI socket (default: $" CLI_SOCKET_ENV ",\n" \
	"                 else " CLI_DEFAULT_SOCKET ")\n" \
	"  --json         machine-readable output (JSON)\n"

#endif
