/*
 * cli_server — the master's side of the operator CLI.
 *
 * The master owns one listening Unix socket (config key cli_socket, mode
 * 0600).  Each connection carries one request line and gets one response,
 * then is closed (protocol: cli/cli_proto.h).  Answers come from the shared
 * call table and worker counters (shm/), so the CLI never waits on a worker.
 */
#ifndef B2BUA_CLI_SERVER_H
#define B2BUA_CLI_SERVER_H

#include "b2bua/config.h"
#include "shm/shm.h"

typedef struct cli_server cli_server_t;

/*
 * Bind and listen on cfg->cli_socket.  A stale socket file (nobody
 * listening) is replaced; a live one means another daemon runs: -EADDRINUSE.
 * Returns 0 and *out, or a negative errno with the reason logged.
 */
int cli_server_open(const struct config *cfg, shm_t *shm, cli_server_t **out);

/* The listening descriptor, for the master's poll loop. */
int cli_server_fd(const cli_server_t *srv);

/* Tell the CLI whether the daemon is draining (shown by `show workers`/`show stats`). */
void cli_server_set_draining(cli_server_t *srv, int draining);

/* The listening socket is readable: accept and answer pending clients.
 * Never blocks for long: a client that sends nothing within 1 s is dropped. */
void cli_server_handle(cli_server_t *srv);

/*
 * What only a worker can do (e.g. end a call): the master sends `request`
 * (one line, no newline) to worker `worker` and waits up to 1 s for its
 * one-line answer in `reply`.  Returns 0, or a negative errno (-ESRCH: no
 * such worker running, -ETIMEDOUT).  Installed by the master.
 */
typedef int cli_worker_request_f(void *arg, unsigned worker, const char *request,
				 char *reply, size_t size);
void cli_server_set_worker_request(cli_server_t *srv, cli_worker_request_f *fn, void *arg);

/* Close and unlink the socket. */
void cli_server_close(cli_server_t *srv);

#endif
