/*
 * metrics_text — the Prometheus text of the daemon's figures.  See
 * metrics_text.h; every metric is documented in docs/metrics.md.
 *
 * Design note.  The page is built in one growing heap buffer by the
 * management process, never by a worker, from one read of each worker's
 * slot (shm_worker_read, shm_hist_read) and one walk of the call table
 * (the active calls by state).  Counters summed over workers are written
 * without labels; what is about one worker (its messages, its Redis
 * connection, its loop) carries worker="N".  Histogram buckets are stored
 * per bucket in shm/ and made cumulative here, with `_count` the +Inf
 * bucket, as Prometheus requires.  Final codes are written only for the
 * codes sent at least once (600 mostly empty series would be noise).
 */
#include "b2bua/metrics_text.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_TEXT_START 16384   /* a typical page fits at once */

/* ------------------------------------------------------------ the address */

static int metrics_port_parse(const char *s, uint16_t *port)
{
	unsigned long v = 0;

	if (*s == '\0' || strlen(s) > 5)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v < 1 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* Split "host:port" or "[host]:port" into host[] and the port text. */
static int metrics_address_split(const char *text, char *host, size_t size,
				 const char **port, const char **why)
{
	const char *colon;
	size_t n;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (close == NULL || close[1] != ':') {
			*why = "an IPv6 address is written \"[addr]:port\"";
			return -EINVAL;
		}
		n = (size_t)(close - text - 1);
		text++;
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL) {
			*why = "no port: it is \"ip:port\"";
			return -EINVAL;
		}
		n = (size_t)(colon - text);
		if (memchr(text, ':', n) != NULL) {
			*why = "an IPv6 address must be in brackets: \"[addr]:port\"";
			return -EINVAL;
		}
	}
	if (n == 0 || n >= size) {
		*why = "no IP address before the port";
		return -EINVAL;
	}
	memcpy(host, text, n);
	host[n] = '\0';
	*port = colon + 1;
	return 0;
}

int metrics_address_parse(const char *text, struct sockaddr_storage *out, socklen_t *len,
			  const char **why)
{
	struct sockaddr_storage ss;
	char host[INET6_ADDRSTRLEN + 1];
	const char *port_text;
	uint16_t port;
	const char *dummy;

	if (why == NULL)
		why = &dummy;
	if (text == NULL || text[0] == '\0') {
		*why = "empty";
		return -EINVAL;
	}
	if (metrics_address_split(text, host, sizeof host, &port_text, why) < 0)
		return -EINVAL;
	if (metrics_port_parse(port_text, &port) < 0) {
		*why = "the port must be a number from 1 to 65535";
		return -EINVAL;
	}
	memset(&ss, 0, sizeof ss);
	if (text[0] == '[') {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;

		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1) {
			*why = "not an IPv6 address (host names are not looked up)";
			return -EINVAL;
		}
		if (len)
			*len = sizeof *a6;
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;

		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) {
			*why = "not an IPv4 address (host names are not looked up)";
			return -EINVAL;
		}
		if (len)
			*len = sizeof *a4;
	}
	if (out)
		*out = ss;
	return 0;
}

/* ------------------------------------------------------------ the buffer */

struct metrics_buf {
	char *p;
	size_t len;
	size_t cap;
	int err;
};

static void metrics_buf_printf(struct metrics_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void metrics_buf_printf(struct metrics_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->err)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->err = -EINVAL;
			return;
		}
		if ((size_t)n < b->cap - b->len)
			break;
		char *p = realloc(b->p, b->cap * 2);
		if (p == NULL) {
			b->err = -ENOMEM;
			return;
		}
		b->p = p;
		b->cap *= 2;
	}
	b->len += (size_t)n;
}

int metrics_text_seconds(uint64_t us, char *buf, size_t size)
{
	char frac[8];
	int n;
	int i;

	snprintf(frac, sizeof frac, "%06" PRIu64, us % 1000000u);
	for (i = 5; i >= 0 && frac[i] == '0'; i--)
		frac[i] = '\0';
	if (frac[0] == '\0')
		n = snprintf(buf, size, "%" PRIu64, us / 1000000u);
	else
		n = snprintf(buf, size, "%" PRIu64 ".%s", us / 1000000u, frac);
	if (n < 0 || (size_t)n >= size) {
		if (size > 0)
			buf[0] = '\0';
		return -ENOSPC;
	}
	return 0;
}

/* ------------------------------------------------------------ the metrics */

/* A counter (or a gauge kept among them) of every worker's slot. */
struct metrics_ctr {
	const char *name;
	const char *type;
	enum shm_counter ctr;
	const char *help;
};

/* Summed over the workers: one series each. */
static const struct metrics_ctr metrics_totals[] = {
	{ "b2bua_calls_total", "counter", SHM_CTR_CALLS_TOTAL,
	  "INVITEs that created a call or were refused as one." },
	{ "b2bua_calls_answered_total", "counter", SHM_CTR_CALLS_ANSWERED,
	  "Calls answered: a 2xx relayed to the caller." },
	{ "b2bua_calls_failed_total", "counter", SHM_CTR_CALLS_FAILED,
	  "Calls that ended with a final code of 300 or more sent to the caller." },
	{ "b2bua_registrations_accepted_total", "counter", SHM_CTR_REG_ACCEPTED,
	  "REGISTERs answered 200 that added or refreshed a binding." },
	{ "b2bua_registrations_removed_total", "counter", SHM_CTR_REG_REMOVED,
	  "REGISTERs answered 200 that only removed bindings (expires 0 or Contact: *)." },
	{ "b2bua_auth_failures_total", "counter", SHM_CTR_AUTH_FAILED,
	  "Digest authentications that failed (REGISTER or INVITE)." },
	{ "b2bua_untrusted_refused_total", "counter", SHM_CTR_UNTRUSTED_REFUSED,
	  "INVITEs not admitted (untrusted_invite: 407 or 403)." },
	{ "b2bua_overload_refused_total", "counter", SHM_CTR_OVERLOAD_REFUSED,
	  "New INVITEs shed by overload control with a stateless 503." },
	{ "b2bua_cdr_written_total", "counter", SHM_CTR_CDR_WRITTEN,
	  "CDRs written to the spool journal: one a call." },
	{ "b2bua_cdr_spooled", "gauge", SHM_CTR_CDR_SPOOLED,
	  "CDRs in the spool not yet confirmed by Redis." },
	{ "b2bua_cdr_replayed_total", "counter", SHM_CTR_CDR_REPLAYED,
	  "CDRs stored in Redis by a drain of the spool after an outage." },
	{ "b2bua_cdr_rejected_total", "counter", SHM_CTR_CDR_REJECTED,
	  "CDRs Redis refused for good, set aside in <spool>.rejected." },
	{ "b2bua_cdr_unreplicated_total", "counter", SHM_CTR_CDR_UNREPLICATED,
	  "CDRs a WAIT found on too few replicas (redis_wait_replicas)." },
};

/* One series per worker, labelled worker="N". */
static const struct metrics_ctr metrics_per_worker[] = {
	{ "b2bua_sip_messages_received_total", "counter", SHM_CTR_MSGS_IN,
	  "SIP messages received by the worker." },
	{ "b2bua_sip_messages_sent_total", "counter", SHM_CTR_MSGS_OUT,
	  "SIP messages sent by the worker." },
	{ "b2bua_sip_retransmissions_sent_total", "counter", SHM_CTR_RETRANS_OUT,
	  "Requests and responses the worker sent again (SIP timers)." },
	{ "b2bua_sip_retransmissions_received_total", "counter", SHM_CTR_RETRANS_IN,
	  "Retransmitted requests the worker received." },
	{ "b2bua_redis_up", "gauge", SHM_CTR_REDIS_UP,
	  "1 while the worker's Redis connection takes commands, else 0." },
	{ "b2bua_connections_open", "gauge", SHM_CTR_CONN_OPEN,
	  "TCP and TLS connections the worker accepted, open now." },
	{ "b2bua_connections_refused_total", "counter", SHM_CTR_CONN_REFUSED,
	  "Connections closed at accept: tcp_max_connections or tcp_max_per_source." },
	{ "b2bua_connections_closed_idle_total", "counter", SHM_CTR_CONN_IDLE,
	  "Connections closed after tcp_idle_timeout without traffic." },
	{ "b2bua_connections_closed_message_timeout_total", "counter", SHM_CTR_CONN_MSG_TIMEOUT,
	  "Connections closed: a message not complete within tcp_message_timeout." },
	{ "b2bua_messages_oversized_total", "counter", SHM_CTR_CONN_OVERSIZED,
	  "Connections closed for a message over 64 KB." },
	{ "b2bua_connections_closed_partial_total", "counter", SHM_CTR_CONN_PARTIAL,
	  "Connections that ended in the middle of a message (peer closed, or garbage)." },
	{ "b2bua_tls_handshake_failures_total", "counter", SHM_CTR_TLS_HANDSHAKE_FAILED,
	  "TLS handshakes that failed (garbage, an untrusted or missing certificate), "
	  "accepted or opened by the worker; the connection was closed." },
	{ "b2bua_calls_at_rest", "gauge", SHM_CTR_CALLS_AT_REST,
	  "Established calls at rest now: their SIP dialogs freed, rebuilt from the call table "
	  "on their next request (call_rest_after)." },
	{ "b2bua_calls_woken_total", "counter", SHM_CTR_CALLS_WOKEN,
	  "Calls at rest that rebuilt their SIP dialogs to send or relay a request." },
};

static const char *const metrics_state_names[] = {
	[SHM_CALL_TRYING] = "TRYING", [SHM_CALL_RINGING] = "RINGING",
	[SHM_CALL_ANSWERED] = "ANSWERED", [SHM_CALL_HELD] = "HELD",
	[SHM_CALL_FORWARDING] = "FORWARDING", [SHM_CALL_ENDING] = "ENDING",
	[SHM_CALL_ENDED] = "ENDED",
};

#define METRICS_STATES (sizeof metrics_state_names / sizeof metrics_state_names[0])

static void metrics_family(struct metrics_buf *b, const char *name, const char *type,
			   const char *help)
{
	metrics_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics_counters(struct metrics_buf *b, const struct shm_worker_info *w,
			     unsigned n)
{
	for (size_t k = 0; k < sizeof metrics_totals / sizeof metrics_totals[0]; k++) {
		const struct metrics_ctr *m = &metrics_totals[k];
		uint64_t sum = 0;

		for (unsigned i = 0; i < n; i++)
			sum += w[i].counters[m->ctr];
		metrics_family(b, m->name, m->type, m->help);
		metrics_buf_printf(b, "%s %" PRIu64 "\n", m->name, sum);
	}
	for (size_t k = 0; k < sizeof metrics_per_worker / sizeof metrics_per_worker[0]; k++) {
		const struct metrics_ctr *m = &metrics_per_worker[k];

		metrics_family(b, m->name, m->type, m->help);
		for (unsigned i = 0; i < n; i++)
			metrics_buf_printf(b, "%s{worker=\"%u\"} %" PRIu64 "\n", m->name, i,
					   w[i].counters[m->ctr]);
	}
}

/* Who runs: a worker index with a process, and how often it was restarted. */
static void metrics_workers(struct metrics_buf *b, const struct shm_worker_info *w, unsigned n)
{
	metrics_family(b, "b2bua_worker_up", "gauge",
		       "1 while the worker index has a running process, else 0.");
	for (unsigned i = 0; i < n; i++)
		metrics_buf_printf(b, "b2bua_worker_up{worker=\"%u\"} %d\n", i, w[i].pid != 0);
	metrics_family(b, "b2bua_worker_restarts_total", "counter",
		       "How often the master restarted the worker index.");
	for (unsigned i = 0; i < n; i++)
		metrics_buf_printf(b, "b2bua_worker_restarts_total{worker=\"%u\"} %" PRIu32 "\n",
				   i, w[i].restarts);
}

static void metrics_final_codes(struct metrics_buf *b, const shm_t *shm)
{
	metrics_family(b, "b2bua_final_codes_total", "counter",
		       "Final responses sent to callers' INVITEs, by code.");
	for (int code = SHM_CODE_MIN; code <= SHM_CODE_MAX; code++) {
		uint64_t v = shm_code_total(shm, code);

		if (v > 0)
			metrics_buf_printf(b, "b2bua_final_codes_total{code=\"%d\"} %" PRIu64 "\n",
					   code, v);
	}
}

static int metrics_count_state(const struct shm_call *call, uint32_t slot, void *arg)
{
	uint64_t *by_state = arg;

	(void)slot;
	if (call->state < METRICS_STATES)
		by_state[call->state]++;
	return 0;
}

static void metrics_active(struct metrics_buf *b, const shm_t *shm)
{
	uint64_t by_state[METRICS_STATES] = { 0 };

	shm_call_foreach(shm, metrics_count_state, by_state);
	metrics_family(b, "b2bua_calls_active", "gauge",
		       "Calls in the shared call table now, by state.");
	for (size_t s = SHM_CALL_TRYING; s < METRICS_STATES; s++)
		metrics_buf_printf(b, "b2bua_calls_active{state=\"%s\"} %" PRIu64 "\n",
				   metrics_state_names[s], by_state[s]);
}

/* One histogram's series; `labels` is "" or `worker="N"`. */
static void metrics_hist_series(struct metrics_buf *b, const char *name, const char *labels,
				enum shm_hist h, const struct shm_hist_info *hi)
{
	const uint64_t *bounds = shm_hist_bounds(h);
	const char *sep = labels[0] ? "," : "";
	char secs[32];
	uint64_t cum = 0;

	for (unsigned k = 0; k < SHM_HIST_BOUNDS; k++) {
		cum += hi->buckets[k];
		metrics_text_seconds(bounds[k], secs, sizeof secs);
		metrics_buf_printf(b, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n",
				   name, labels, sep, secs, cum);
	}
	metrics_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, sep,
			   hi->count);
	metrics_text_seconds(hi->sum_us, secs, sizeof secs);
	metrics_buf_printf(b, "%s_sum%s%s%s %s\n", name, labels[0] ? "{" : "", labels,
			   labels[0] ? "}" : "", secs);
	metrics_buf_printf(b, "%s_count%s%s%s %" PRIu64 "\n", name, labels[0] ? "{" : "",
			   labels, labels[0] ? "}" : "", hi->count);
}

/* Call set-up: one histogram for the host, the workers' buckets added. */
static void metrics_setup(struct metrics_buf *b, const shm_t *shm, unsigned n)
{
	struct shm_hist_info sum = { 0 };
	struct shm_hist_info one;

	for (unsigned i = 0; i < n; i++) {
		if (shm_hist_read(shm, i, SHM_HIST_SETUP, &one) < 0)
			continue;
		for (unsigned k = 0; k <= SHM_HIST_BOUNDS; k++)
			sum.buckets[k] += one.buckets[k];
		sum.count += one.count;
		sum.sum_us += one.sum_us;
	}
	metrics_family(b, "b2bua_call_setup_seconds", "histogram",
		       "INVITE received to the final answer sent to the caller.");
	metrics_hist_series(b, "b2bua_call_setup_seconds", "", SHM_HIST_SETUP, &sum);
}

static void metrics_worker_hist(struct metrics_buf *b, const shm_t *shm, unsigned n,
				const char *name, enum shm_hist h, const char *help)
{
	struct shm_hist_info hi;
	char labels[32];

	metrics_family(b, name, "histogram", help);
	for (unsigned i = 0; i < n; i++) {
		if (shm_hist_read(shm, i, h, &hi) < 0)
			continue;
		snprintf(labels, sizeof labels, "worker=\"%u\"", i);
		metrics_hist_series(b, name, labels, h, &hi);
	}
}

int metrics_text_render(const shm_t *shm, unsigned workers, char **out, size_t *len)
{
	unsigned max = shm_max_workers(shm);
	unsigned n = workers && workers < max ? workers : max;
	struct metrics_buf b = { .cap = METRICS_TEXT_START };
	struct shm_worker_info *w = calloc(n, sizeof *w);

	b.p = malloc(b.cap);
	if (w == NULL || b.p == NULL) {
		free(w);
		free(b.p);
		return -ENOMEM;
	}
	b.p[0] = '\0';
	for (unsigned i = 0; i < n; i++)
		shm_worker_read(shm, i, &w[i]);
	metrics_counters(&b, w, n);
	metrics_workers(&b, w, n);
	metrics_final_codes(&b, shm);
	metrics_active(&b, shm);
	metrics_setup(&b, shm, n);
	metrics_worker_hist(&b, shm, n, "b2bua_redis_command_seconds", SHM_HIST_REDIS,
			    "Round trip of a Redis command the worker sent, until its reply.");
	metrics_worker_hist(&b, shm, n, "b2bua_event_loop_lag_seconds", SHM_HIST_LOOP_LAG,
			    "How late the worker's 1 s tick timer ran: its loop's lag.");
	free(w);
	if (b.err) {
		free(b.p);
		return b.err;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}
