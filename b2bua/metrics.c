/*
 * metrics — the HTTP side of the Prometheus endpoint.  See metrics.h.
 *
 * Design note.  The HTTP server is Debian's libmicrohttpd, not ours.  It
 * runs in the management process without a thread: MHD_USE_EPOLL with no
 * internal polling thread gives one epoll descriptor (the listening socket
 * and every connection in it) that mgmt.c adds to its poll() beside the CLI
 * socket, and MHD_run() does whatever is ready, non-blocking, then returns.
 * So there is no lock, no second thread touching log.c or the CLI, and a
 * slow or stuck scraper cannot block anything: its socket is only written
 * when it is writable, and MHD drops it after METRICS_CONN_TIMEOUT_S (at
 * most METRICS_CONN_MAX at once).  The CLI and a scrape share one loop, so
 * the cost of a scrape (render: one read of each worker's slot and one walk
 * of the call table, a few milliseconds for a full table) delays a CLI
 * answer by that much at worst, and never a worker: workers never wait on
 * the management process.
 *
 * The socket is bound by the management process when it starts (and
 * again when the master restarts it; MHD sets SO_REUSEADDR): an address
 * that cannot be listened on is logged and metrics stay off, while the
 * CLI goes on.  metrics_address is read at start only: changing it needs
 * a restart (docs/configuration.md).
 *
 * Answers: GET or HEAD /metrics: 200 with the text; another path: 404;
 * another method: 405.  Nothing else is served.
 */
#include "b2bua/metrics.h"

#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b2bua/log.h"
#include "b2bua/metrics_text.h"

#define METRICS_CONN_MAX        16   /* scrapers at once; more wait in the backlog */
#define METRICS_CONN_TIMEOUT_S  10   /* an idle or stuck connection is dropped */
#define METRICS_PATH            "/metrics"

struct metrics {
	struct MHD_Daemon *daemon;
	const shm_t *shm;
	unsigned workers;
	int fd;                          /* MHD's epoll descriptor */
};

/* MHD's own error lines: a peer can trigger some of them, so limited. */
static void metrics_mhd_log(void *cls, const char *fmt, va_list ap)
{
	static struct log_limit limit = { .what = "metrics: HTTP server messages" };
	char line[256];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof line, fmt, ap);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_limited(&limit, LOG_WARN, "metrics: %s", line);
}

static enum MHD_Result metrics_reply_text(struct MHD_Connection *conn, unsigned status,
					  const char *text)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result metrics_reply_page(struct metrics *m, struct MHD_Connection *conn)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *text;
	size_t len;

	if (metrics_text_render(m->shm, m->workers, &text, &len) < 0)
		return metrics_reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	/* MHD frees the page with free() once it is sent (or the peer is gone). */
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, METRICS_CONTENT_TYPE);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* MHD_AccessHandlerCallback: called once the request's headers are in;
 * requests we serve have no body, so the answer goes at once. */
static enum MHD_Result metrics_on_request(void *cls, struct MHD_Connection *conn,
					  const char *url, const char *method,
					  const char *version, const char *upload_data,
					  size_t *upload_data_size, void **con_cls)
{
	struct metrics *m = cls;

	(void)version; (void)upload_data; (void)con_cls;
	if (*upload_data_size != 0) {
		*upload_data_size = 0;   /* a body we do not want: skip it */
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return metrics_reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
					  "only GET " METRICS_PATH "\n");
	if (strcmp(url, METRICS_PATH) != 0)
		return metrics_reply_text(conn, MHD_HTTP_NOT_FOUND,
					  "not found: metrics are at " METRICS_PATH "\n");
	return metrics_reply_page(m, conn);
}

int metrics_create(const struct config *cfg, const shm_t *shm, metrics_t **out)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	const union MHD_DaemonInfo *info;
	const char *why = NULL;
	struct metrics *m;
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;

	*out = NULL;
	if (cfg->metrics_address[0] == '\0')
		return 0;
	/* config_keys.c checked it already; a second look costs nothing. */
	if (metrics_address_parse(cfg->metrics_address, &ss, &sslen, &why) < 0) {
		log_error("metrics_address \"%s\": %s", cfg->metrics_address, why);
		return -EINVAL;
	}
	m = calloc(1, sizeof *m);
	if (m == NULL)
		return -ENOMEM;
	m->shm = shm;
	m->workers = (unsigned)cfg->workers;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	m->daemon = MHD_start_daemon(flags, 0, NULL, NULL, metrics_on_request, m,
			MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
			MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_CONN_MAX,
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_CONN_TIMEOUT_S,
			MHD_OPTION_EXTERNAL_LOGGER, metrics_mhd_log, NULL,
			MHD_OPTION_END);
	if (m->daemon == NULL) {
		log_error("metrics: cannot listen on %s (in use, or not an address of this "
			  "host): metrics are off", cfg->metrics_address);
		free(m);
		return -EADDRNOTAVAIL;
	}
	info = MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	m->fd = info ? info->epoll_fd : -1;
	if (m->fd < 0) {
		log_error("metrics: the HTTP server gives no descriptor to poll: metrics are off");
		MHD_stop_daemon(m->daemon);
		free(m);
		return -EIO;
	}
	log_info("metrics: serving http://%s%s", cfg->metrics_address, METRICS_PATH);
	*out = m;
	return 0;
}

int metrics_fd(const metrics_t *m)
{
	return m ? m->fd : -1;
}

int metrics_timeout_ms(metrics_t *m, int max_ms)
{
	MHD_UNSIGNED_LONG_LONG t;

	if (m == NULL || MHD_get_timeout(m->daemon, &t) != MHD_YES)
		return max_ms;
	if (t > INT_MAX)
		t = INT_MAX;
	if (max_ms < 0 || t < (MHD_UNSIGNED_LONG_LONG)max_ms)
		return (int)t;
	return max_ms;
}

void metrics_run(metrics_t *m)
{
	if (m != NULL)
		MHD_run(m->daemon);
}

void metrics_destroy(metrics_t *m)
{
	if (m == NULL)
		return;
	MHD_stop_daemon(m->daemon);
	free(m);
}
