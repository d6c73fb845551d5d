/*
 * cli_stats — see cli_stats.h; `show workers` and `show stats`.
 *
 * Design note.  Both answers come from the shared call table alone: worker
 * slots (pid, port, uptime, restarts, active calls) and the counters the
 * workers keep.  Figures are gathered by cli_stats_collect() and only then
 * formatted, so that the CLI and a later metrics endpoint report the same
 * numbers.  A worker slot beyond the configured count is never shown (the
 * table may have room for more workers than run).
 */
#include "cli/cli_stats.h"
#include "cli/cli_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

unsigned cli_stats_workers(const shm_t *shm, unsigned workers)
{
	unsigned max = shm_max_workers(shm);

	return workers && workers < max ? workers : max;
}

/* ------------------------------------------------------------ show workers */

static const char *cli_stats_itoa(int v, char *buf, size_t size)
{
	snprintf(buf, size, "%d", v);
	return buf;
}

/* A worker's traffic, into its JSON object (show workers, show stats):
 * how many calls it created and how much crossed between workers. */
static int cli_stats_worker_counters(json_t *o, const struct shm_worker_info *w)
{
	static const struct { const char *key; enum shm_counter ctr; } f[] = {
		{ "calls_created", SHM_CTR_CALLS_CREATED },
		{ "msgs_in", SHM_CTR_MSGS_IN },
		{ "msgs_out", SHM_CTR_MSGS_OUT },
		{ "handed_out", SHM_CTR_HANDED_OUT },
		{ "handed_in", SHM_CTR_HANDED_IN },
		{ "handover_dropped", SHM_CTR_HANDOVER_DROPPED },
		{ "unroutable", SHM_CTR_UNROUTABLE },
		{ "connections_open", SHM_CTR_CONN_OPEN },
		{ "calls_at_rest", SHM_CTR_CALLS_AT_REST },
		{ "calls_woken", SHM_CTR_CALLS_WOKEN },
	};

	for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
		if (json_object_set_new(o, f[k].key, cli_json_u64(w->counters[f[k].ctr])) < 0)
			return -ENOMEM;
	return 0;
}

int cli_show_workers(cli_server_t *srv, const struct cli_cmd_args *req,
		     struct cli_buf *out, struct cli_reply *reply)
{
	uint64_t now = cli_now_ms(CLOCK_REALTIME);
	unsigned n = cli_stats_workers(srv->shm, srv->workers);
	json_t *arr = NULL;

	if (req->json) {
		arr = json_array();
		if (!arr)
			return -ENOMEM;
	} else {
		cli_buf_printf(out, "%-6s %-8s %-6s %-8s %-9s %-9s %-9s %-10s %-10s %-11s %-10s %s\n",
			       "INDEX", "PID", "PORT", "ACTIVE", "UPTIME_S", "RESTARTS", "CALLS",
			       "MSGS_IN", "MSGS_OUT", "HANDED_OUT", "HANDED_IN", "CONNECTIONS");
	}
	for (unsigned i = 0; i < n; i++) {
		struct shm_worker_info w;
		char pid[16], upt[24];
		uint64_t up;

		if (shm_worker_read(srv->shm, i, &w) < 0)
			continue;
		up = w.pid ? cli_elapsed_s(w.started_ms, now) : 0;
		if (arr) {
			json_t *o = json_pack("{s:i, s:i, s:i, s:o, s:o, s:o}",
				"index", (int)i, "pid", (int)w.pid, "port", (int)w.port,
				"active_calls", cli_json_u64(w.counters[SHM_CTR_ACTIVE]),
				"uptime_s", cli_json_u64(up),
				"restarts", cli_json_u64(w.restarts));

			if (o && cli_stats_worker_counters(o, &w) == 0)
				json_array_append_new(arr, o);
			else
				json_decref(o);
			continue;
		}
		cli_buf_printf(out, "%-6u %-8s %-6u %-8" PRIu64 " %-9s %-9" PRIu32 " %-9" PRIu64
			       " %-10" PRIu64 " %-10" PRIu64 " %-11" PRIu64 " %-10" PRIu64 " %" PRIu64
			       "\n",
			       i, w.pid ? cli_stats_itoa((int)w.pid, pid, sizeof pid) : "-",
			       (unsigned)w.port, w.counters[SHM_CTR_ACTIVE],
			       w.pid ? cli_stats_itoa((int)up, upt, sizeof upt) : "-", w.restarts,
			       w.counters[SHM_CTR_CALLS_CREATED], w.counters[SHM_CTR_MSGS_IN],
			       w.counters[SHM_CTR_MSGS_OUT], w.counters[SHM_CTR_HANDED_OUT],
			       w.counters[SHM_CTR_HANDED_IN], w.counters[SHM_CTR_CONN_OPEN]);
	}
	if (arr) {
		/* A failed json_pack above leaves the array short: report it, don't lie. */
		if (json_array_size(arr) != n)
			out->err = -ENOMEM;
		cli_buf_add_json(out, arr);
		cli_buf_add(out, "\n", 1);
		json_decref(arr);
	} else {
		cli_buf_printf(out, "draining: %s\n", srv->draining ? "yes" : "no");
	}
	return out->err;
}

/* ------------------------------------------------------------ show stats */

/* Subscribers behind NAT (worker/keepalive.c, peer hand-offs), into show stats. */
static int cli_stats_nat_json(json_t *o, const struct cli_stats *st)
{
	static const struct { const char *key; enum shm_counter ctr; } f[] = {
		{ "keepalives_sent", SHM_CTR_KEEPALIVES_SENT },
		{ "keepalives_failed", SHM_CTR_KEEPALIVES_FAILED },
		{ "bindings_removed", SHM_CTR_BINDINGS_REMOVED },
		{ "peer_relayed", SHM_CTR_PEER_RELAYED },
		{ "flow_failed", SHM_CTR_FLOW_FAILED },
	};

	for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
		if (json_object_set_new(o, f[k].key, cli_json_u64(st->ctr[f[k].ctr])) < 0)
			return -ENOMEM;
	return 0;
}

void cli_stats_collect(const shm_t *shm, unsigned workers, int draining, struct cli_stats *out)
{
	unsigned n = cli_stats_workers(shm, workers);

	memset(out, 0, sizeof *out);
	for (unsigned i = 0; i < n; i++) {
		struct shm_worker_info w;

		if (shm_worker_read(shm, i, &w) < 0)
			continue;
		for (int c = 0; c < SHM_CTR__COUNT; c++)
			out->ctr[c] += w.counters[c];
	}
	/* The table's admission counter is the truth about live calls. */
	out->active = shm_call_count(shm);
	for (int code = SHM_CODE_MIN; code <= SHM_CODE_MAX; code++)
		out->final_codes[code - SHM_CODE_MIN] = shm_code_total(shm, code);
	out->draining = draining;
}

/* Per worker: who created how many calls, and the hand-over traffic. */
static json_t *cli_stats_workers_json(cli_server_t *srv)
{
	unsigned n = cli_stats_workers(srv->shm, srv->workers);
	json_t *arr = json_array();

	for (unsigned i = 0; arr && i < n; i++) {
		struct shm_worker_info w;
		json_t *o;

		if (shm_worker_read(srv->shm, i, &w) < 0)
			continue;
		o = json_pack("{s:i}", "index", (int)i);
		if (o == NULL || cli_stats_worker_counters(o, &w) < 0 ||
		    json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* CDRs not yet confirmed by Redis (and its replicas, redis_wait_replicas),
 * and those a WAIT found on too few replicas (each counted once). */
static int cli_stats_cdr_json(json_t *o, const struct cli_stats *st)
{
	if (json_object_set_new(o, "cdr_spooled", cli_json_u64(st->ctr[SHM_CTR_CDR_SPOOLED])) < 0 ||
	    json_object_set_new(o, "cdr_unreplicated",
				cli_json_u64(st->ctr[SHM_CTR_CDR_UNREPLICATED])) < 0)
		return -ENOMEM;
	return 0;
}

static int cli_stats_json(cli_server_t *srv, const struct cli_stats *st, struct cli_buf *out)
{
	json_t *codes = json_object();
	json_t *o;

	if (!codes)
		return -ENOMEM;
	for (int code = SHM_CODE_MIN; code <= SHM_CODE_MAX; code++) {
		uint64_t n = st->final_codes[code - SHM_CODE_MIN];
		char key[12];

		if (n == 0)
			continue;
		snprintf(key, sizeof key, "%d", code);
		json_object_set_new(codes, key, cli_json_u64(n));
	}
	o = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b}",
		"node_id", cli_json_str(srv->node_id, 0),
		"calls_total", cli_json_u64(st->ctr[SHM_CTR_CALLS_TOTAL]),
		"calls_active", cli_json_u64(st->active),
		"calls_answered", cli_json_u64(st->ctr[SHM_CTR_CALLS_ANSWERED]),
		"calls_failed", cli_json_u64(st->ctr[SHM_CTR_CALLS_FAILED]),
		"final_codes", codes,
		"msgs_in", cli_json_u64(st->ctr[SHM_CTR_MSGS_IN]),
		"msgs_out", cli_json_u64(st->ctr[SHM_CTR_MSGS_OUT]),
		"rate_limited_invite", cli_json_u64(st->ctr[SHM_CTR_RATE_LIMITED_INVITE]),
		"rate_limited_register", cli_json_u64(st->ctr[SHM_CTR_RATE_LIMITED_REGISTER]),
		"untrusted_refused", cli_json_u64(st->ctr[SHM_CTR_UNTRUSTED_REFUSED]),
		"overload_refused", cli_json_u64(st->ctr[SHM_CTR_OVERLOAD_REFUSED]),
		"draining", st->draining);
	if (o == NULL || json_object_set_new(o, "workers", cli_stats_workers_json(srv)) < 0 ||
	    cli_stats_cdr_json(o, st) < 0 || cli_stats_nat_json(o, st) < 0)
		out->err = -ENOMEM;
	cli_buf_add_json(out, o);
	cli_buf_add(out, "\n", 1);
	json_decref(o);
	return out->err;
}

static int cli_stats_text(cli_server_t *srv, const struct cli_stats *st, struct cli_buf *out)
{
	int any = 0;

	cli_buf_printf(out, "node:             %s\n", srv->node_id);
	cli_buf_printf(out, "draining:         %s\n", st->draining ? "yes" : "no");
	cli_buf_printf(out, "calls total:      %" PRIu64 "\n", st->ctr[SHM_CTR_CALLS_TOTAL]);
	cli_buf_printf(out, "calls active:     %u\n", st->active);
	cli_buf_printf(out, "calls answered:   %" PRIu64 "\n", st->ctr[SHM_CTR_CALLS_ANSWERED]);
	cli_buf_printf(out, "calls failed:     %" PRIu64 "\n", st->ctr[SHM_CTR_CALLS_FAILED]);
	cli_buf_printf(out, "messages in:      %" PRIu64 "\n", st->ctr[SHM_CTR_MSGS_IN]);
	cli_buf_printf(out, "messages out:     %" PRIu64 "\n", st->ctr[SHM_CTR_MSGS_OUT]);
	cli_buf_printf(out, "handed over:      %" PRIu64 " (dropped: %" PRIu64 ", unroutable: %"
		       PRIu64 ")\n", st->ctr[SHM_CTR_HANDED_OUT],
		       st->ctr[SHM_CTR_HANDOVER_DROPPED], st->ctr[SHM_CTR_UNROUTABLE]);
	cli_buf_printf(out, "rate limited:     %" PRIu64 " INVITE, %" PRIu64 " REGISTER\n",
		       st->ctr[SHM_CTR_RATE_LIMITED_INVITE],
		       st->ctr[SHM_CTR_RATE_LIMITED_REGISTER]);
	cli_buf_printf(out, "untrusted refused: %" PRIu64 "\n", st->ctr[SHM_CTR_UNTRUSTED_REFUSED]);
	/* New INVITEs shed with a stateless 503: not calls, never in the figures above. */
	cli_buf_printf(out, "overload refused: %" PRIu64 "\n",
		       st->ctr[SHM_CTR_OVERLOAD_REFUSED]);
	cli_buf_printf(out, "cdr spooled:      %" PRIu64 " (unreplicated: %" PRIu64 ")\n",
		       st->ctr[SHM_CTR_CDR_SPOOLED], st->ctr[SHM_CTR_CDR_UNREPLICATED]);
	cli_buf_printf(out, "NAT keepalives:   %" PRIu64 " sent, %" PRIu64 " failed, %" PRIu64
		       " bindings removed\n", st->ctr[SHM_CTR_KEEPALIVES_SENT],
		       st->ctr[SHM_CTR_KEEPALIVES_FAILED], st->ctr[SHM_CTR_BINDINGS_REMOVED]);
	cli_buf_printf(out, "peer relayed:     %" PRIu64 "\n", st->ctr[SHM_CTR_PEER_RELAYED]);
	cli_buf_printf(out, "flow failed:      %" PRIu64 "\n", st->ctr[SHM_CTR_FLOW_FAILED]);
	cli_buf_printf(out, "final codes sent:");
	for (int code = SHM_CODE_MIN; code <= SHM_CODE_MAX; code++) {
		uint64_t n = st->final_codes[code - SHM_CODE_MIN];

		if (n == 0)
			continue;
		cli_buf_printf(out, "\n  %d  %" PRIu64, code, n);
		any = 1;
	}
	cli_buf_printf(out, "%s\n", any ? "" : " none");
	return out->err;
}

int cli_show_stats(cli_server_t *srv, const struct cli_cmd_args *req, struct cli_buf *out,
		   struct cli_reply *reply)
{
	struct cli_stats st;

	cli_stats_collect(srv->shm, srv->workers, srv->draining, &st);
	return req->json ? cli_stats_json(srv, &st, out) : cli_stats_text(srv, &st, out);
}
