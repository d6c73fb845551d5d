/*
 * cli_server — the daemon's side of the operator CLI.
 *
 * The master binds one listening Unix socket (config key cli_socket, mode
 * 0600) before it forks anything and keeps it; the management process
 * (b2bua/mgmt.c) inherits it and serves it.  Each connection carries one
 * request line and gets one response, then is closed (protocol:
 * cli/cli_proto.h).  Answers come from the shared call table and worker
 * counters (shm/), so the CLI never waits on a worker; subscribers and CDRs
 * come from Redis through the store's synchronous side (store/store.h),
 * one bounded connection per command.
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

/* The listening descriptor, for the management process's poll loop. */
int cli_server_fd(const cli_server_t *srv);

/* The call table it answers from: the metrics endpoint reads the same one. */
const shm_t *cli_server_shm(const cli_server_t *srv);

/* Tell the CLI whether the daemon is draining (shown by `show workers`/`show stats`). */
void cli_server_set_draining(cli_server_t *srv, int draining);

/* A reload is in force in the management process: take what the CLI copied
 * from the configuration at start (no_answer_timeout, the realm of new HA1s). */
void cli_server_reload(cli_server_t *srv, const struct config *cfg);

/* The listening socket is readable: accept and answer pending clients.
 * Never blocks for long: a client that sends nothing within 1 s is dropped. */
void cli_server_handle(cli_server_t *srv);

/*
 * What only a worker can do (e.g. end a call): send the control request
 * *req (b2bua/ctl.h; its addressee is req->hdr.to, its sequence number is
 * the function's business) and wait, bounded, for the worker's answer.
 * Returns 0 with the CTL_REPLY in *reply, or a negative errno (-ESRCH: that
 * worker is not running, -ETIMEDOUT: it did not answer in time).
 * Installed by the management process (mgmt.c).
 */
struct ctl_msg;
typedef int cli_ctl_request_f(void *arg, struct ctl_msg *req, struct ctl_msg *reply);
void cli_server_set_ctl_request(cli_server_t *srv, cli_ctl_request_f *fn, void *arg);

/* Close and unlink the socket. */
void cli_server_close(cli_server_t *srv);

#endif
