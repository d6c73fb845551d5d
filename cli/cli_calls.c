/*
 * cli_calls — `show calls`, `show call ID` and `call kill ID`.
 *
 * Design note.  Calls are read straight from the shared call table, so the
 * CLI never waits on a worker to list them.  They are formatted one at a
 * time as the table is walked (JSON too, one small jansson object per
 * call), so memory follows the size of the answer, not a copy of the table.
 * Every string is cleaned (cli_clean) before it is shown: the table holds
 * what SIP peers sent.  Each leg's transport is shm_transport_name()'s name
 * ("udp", "tcp", "tls"); the B-leg has none ("-", null) until one is tried.
 *
 * The exception is `call kill`: only the worker that owns a call can hang
 * up its dialogs.  The management process installs a function that sends a
 * CTL_KILL_CALL control request to that worker (b2bua/ctl.h, through the
 * master) and waits, at most 1 s, for its answer; the CLI then watches the
 * call table, at most CLI_KILL_WAIT_MS, until the call has gone, so that
 * "killed" means the call is over, not merely asked to be.
 */
#include "cli/cli_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "b2bua/ctl.h"

#define CLI_KILL_WAIT_MS      2000          /* a killed call must leave the table within */
#define CLI_KILL_POLL_MS      10

static const char *cli_state_name(uint8_t state)
{
	switch (state) {
	case SHM_CALL_TRYING:     return "TRYING";
	case SHM_CALL_RINGING:    return "RINGING";
	case SHM_CALL_ANSWERED:   return "ANSWERED";
	case SHM_CALL_HELD:       return "HELD";
	case SHM_CALL_FORWARDING: return "FORWARDING";
	case SHM_CALL_ENDING:     return "ENDING";
	case SHM_CALL_ENDED:      return "ENDED";
	default:                  return "UNKNOWN";
	}
}

static const char *cli_party_name(uint8_t party)
{
	switch (party) {
	case SHM_PARTY_CALLER: return "caller";
	case SHM_PARTY_CALLEE: return "callee";
	default:               return NULL;
	}
}

struct cli_calls_walk {
	struct cli_buf *out;
	int json;
	int long_form;                  /* --long: legs and times too */
	unsigned count;
	uint64_t now_ms;
};

/* The displayable strings of one call, cleaned once for text and JSON alike. */
struct cli_call_text {
	char id[SHM_ID_MAX];
	char caller[SHM_URI_MAX];
	char callee[SHM_URI_MAX];
	char forward_target[SHM_URI_MAX];
	char a_call_id[SHM_CALLID_MAX];
	char b_call_id[SHM_CALLID_MAX];
	char state[32];
	const char *held_by;
	uint64_t age_s;
	const char *a_transport;
	const char *b_transport;        /* NULL: no B-leg tried yet */
};

/* One leg's dialog identifiers, cleaned. */
struct cli_leg_text {
	char call_id[SHM_CALLID_MAX];
	char local_tag[SHM_TAG_MAX];
	char remote_tag[SHM_TAG_MAX];
	char remote_target[SHM_URI_MAX];
	const char *transport;          /* NULL: no such leg yet (no Call-ID) */
};

static void cli_call_text(const struct shm_call *c, uint64_t now_ms, struct cli_call_text *t)
{
	cli_clean(t->id, sizeof t->id, c->id, sizeof c->id);
	cli_clean(t->caller, sizeof t->caller, c->caller, sizeof c->caller);
	cli_clean(t->callee, sizeof t->callee, c->callee, sizeof c->callee);
	cli_clean(t->forward_target, sizeof t->forward_target, c->forward_target,
		  sizeof c->forward_target);
	cli_clean(t->a_call_id, sizeof t->a_call_id, c->a.call_id, sizeof c->a.call_id);
	cli_clean(t->b_call_id, sizeof t->b_call_id, c->b.call_id, sizeof c->b.call_id);
	t->held_by = c->state == SHM_CALL_HELD ? cli_party_name(c->held_by) : NULL;
	if (t->held_by)
		snprintf(t->state, sizeof t->state, "HELD(by %s)", t->held_by);
	else
		snprintf(t->state, sizeof t->state, "%s", cli_state_name(c->state));
	t->age_s = cli_elapsed_s(c->start_ms, now_ms);
	t->a_transport = shm_transport_name(c->a.transport);
	t->b_transport = c->b.call_id[0] ? shm_transport_name(c->b.transport) : NULL;
}

static void cli_leg_text(const struct shm_leg *leg, struct cli_leg_text *l)
{
	cli_clean(l->call_id, sizeof l->call_id, leg->call_id, sizeof leg->call_id);
	cli_clean(l->local_tag, sizeof l->local_tag, leg->local_tag, sizeof leg->local_tag);
	cli_clean(l->remote_tag, sizeof l->remote_tag, leg->remote_tag, sizeof leg->remote_tag);
	cli_clean(l->remote_target, sizeof l->remote_target, leg->remote_target,
		  sizeof leg->remote_target);
	l->transport = leg->call_id[0] ? shm_transport_name(leg->transport) : NULL;
}


/* The object of `show calls --json`. */
static json_t *cli_call_json(const struct shm_call *c, const struct cli_call_text *t)
{
	return json_pack("{s:s, s:o, s:o, s:s, s:o, s:o, s:i, s:o, s:o, s:o, s:s, s:o}",
		"id", t->id,
		"caller", cli_json_str(t->caller, 0),
		"callee", cli_json_str(t->callee, 0),
		"state", cli_state_name(c->state),
		"held_by", t->held_by ? json_string(t->held_by) : json_null(),
		"age_s", cli_json_u64(t->age_s),
		"worker", (int)c->worker,
		"forward_target", cli_json_str(t->forward_target, 1),
		"a_call_id", cli_json_str(t->a_call_id, 0),
		"b_call_id", cli_json_str(t->b_call_id, 1),
		"a_transport", t->a_transport,
		"b_transport", t->b_transport ? json_string(t->b_transport) : json_null());
}

static json_t *cli_leg_json(const struct shm_leg *leg)
{
	struct cli_leg_text l;

	cli_leg_text(leg, &l);
	return json_pack("{s:o, s:o, s:o, s:o, s:o}",
		"call_id", cli_json_str(l.call_id, 1),
		"local_tag", cli_json_str(l.local_tag, 1),
		"remote_tag", cli_json_str(l.remote_tag, 1),
		"remote_target", cli_json_str(l.remote_target, 1),
		"transport", l.transport ? json_string(l.transport) : json_null());
}

/* The --long object: the short one plus times and both legs; NULL without memory. */
static json_t *cli_call_json_long(const struct shm_call *c, const struct cli_call_text *t)
{
	json_t *o = cli_call_json(c, t);

	if (!o)
		return NULL;
	if (json_object_set_new(o, "start_ms", cli_json_u64(c->start_ms)) < 0 ||
	    json_object_set_new(o, "ring_ms", cli_json_u64(c->ring_ms)) < 0 ||
	    json_object_set_new(o, "answer_ms", cli_json_u64(c->answer_ms)) < 0 ||
	    json_object_set_new(o, "a", cli_leg_json(&c->a)) < 0 ||
	    json_object_set_new(o, "b", cli_leg_json(&c->b)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static void cli_leg_long_text(struct cli_buf *out, const char *name, const struct shm_leg *leg)
{
	struct cli_leg_text l;

	cli_leg_text(leg, &l);
	cli_buf_printf(out, "  %s call-id: %s\n", name, cli_dash(l.call_id));
	cli_buf_printf(out, "  %s tags:    local %s, remote %s\n", name, cli_dash(l.local_tag),
		       cli_dash(l.remote_tag));
	cli_buf_printf(out, "  %s target:  %s\n", name, cli_dash(l.remote_target));
	cli_buf_printf(out, "  %s transport: %s\n", name, l.transport ? l.transport : "-");
}

/* One call as a block of lines: `show calls --long` and `show call ID`. */
static void cli_call_long_text(struct cli_buf *out, const struct shm_call *c,
			       const struct cli_call_text *t)
{
	char start[40], ring[40], answer[40];

	cli_iso_ms(c->start_ms, start, sizeof start);
	cli_iso_ms(c->ring_ms, ring, sizeof ring);
	cli_iso_ms(c->answer_ms, answer, sizeof answer);
	cli_buf_printf(out, "call %s\n", t->id);
	cli_buf_printf(out, "  state:         %s\n", cli_state_name(c->state));
	cli_buf_printf(out, "  held:          %s%s\n", t->held_by ? "by " : "no",
		       t->held_by ? t->held_by : "");
	cli_buf_printf(out, "  worker:        %u\n", (unsigned)c->worker);
	cli_buf_printf(out, "  caller:        %s\n", t->caller);
	cli_buf_printf(out, "  callee:        %s\n", t->callee);
	cli_buf_printf(out, "  forward:       %s\n", cli_dash(t->forward_target));
	cli_buf_printf(out, "  started:       %s (%" PRIu64 " s ago)\n", start, t->age_s);
	cli_buf_printf(out, "  ringing:       %s\n", ring);
	cli_buf_printf(out, "  answered:      %s\n", answer);
	cli_leg_long_text(out, "A-leg", &c->a);
	cli_leg_long_text(out, "B-leg", &c->b);
}

static int cli_calls_one(const struct shm_call *c, uint32_t slot, void *arg)
{
	struct cli_calls_walk *walk = arg;
	struct cli_call_text t;
	json_t *o;

	cli_call_text(c, walk->now_ms, &t);
	if (walk->json) {
		cli_buf_add(walk->out, walk->count ? ",\n" : "", walk->count ? 2 : 0);
		o = walk->long_form ? cli_call_json_long(c, &t) : cli_call_json(c, &t);
		cli_buf_add_json(walk->out, o);
		json_decref(o);
	} else if (walk->long_form) {
		cli_buf_add(walk->out, walk->count ? "\n" : "", walk->count ? 1 : 0);
		cli_call_long_text(walk->out, c, &t);
	} else {
		cli_buf_printf(walk->out, "%-20s %-32s %-32s %-16s %6" PRIu64 " %-6u %-32s %-11s "
			       "%s\n", t.id, t.caller, t.callee, t.state, t.age_s,
			       (unsigned)c->worker, cli_dash(t.forward_target), t.a_transport,
			       t.b_transport ? t.b_transport : "-");
	}
	walk->count++;
	/* Stop walking once the answer cannot be built anyway. */
	return walk->out->err;
}

int cli_show_calls(cli_server_t *srv, const struct cli_cmd_args *req, struct cli_buf *out,
		   struct cli_reply *reply)
{
	struct cli_calls_walk walk = {
		.out = out, .json = req->json, .long_form = (req->opts & CLI_OPT_LONG) != 0,
		.now_ms = cli_now_ms(CLOCK_REALTIME),
	};

	if (req->json)
		cli_buf_add(out, "[", 1);
	else if (!walk.long_form)
		cli_buf_printf(out, "%-20s %-32s %-32s %-16s %6s %-6s %-32s %-11s %s\n",
			       "ID", "CALLER", "CALLEE", "STATE", "AGE_S", "WORKER", "FORWARD",
			       "A_TRANSPORT", "B_TRANSPORT");
	shm_call_foreach(srv->shm, cli_calls_one, &walk);
	if (req->json)
		cli_buf_add(out, "]\n", 2);
	else
		cli_buf_printf(out, "%s%u call%s\n", walk.long_form && walk.count ? "\n" : "",
			       walk.count, walk.count == 1 ? "" : "s");
	return out->err;
}

/* ------------------------------------------------------------ show call, call kill */

struct cli_call_match {
	const char *id;
	uint32_t slot;
	struct shm_call *call;
};

static int cli_call_match_one(const struct shm_call *c, uint32_t slot, void *arg)
{
	struct cli_call_match *m = arg;

	if (strncmp(c->id, m->id, sizeof c->id) != 0)
		return 0;
	m->slot = slot;
	*m->call = *c;
	return 1;
}

/* The call with this id: 0 with its slot and a copy, or -ENOENT. */
static int cli_call_find(const cli_server_t *srv, const char *id, uint32_t *slot,
			 struct shm_call *out)
{
	struct cli_call_match m = { .id = id, .call = out };

	if (!shm_call_foreach(srv->shm, cli_call_match_one, &m))
		return -ENOENT;
	*slot = m.slot;
	return 0;
}

int cli_show_call(cli_server_t *srv, const struct cli_cmd_args *req, struct cli_buf *out,
		  struct cli_reply *reply)
{
	struct cli_call_text t;
	struct shm_call c;
	uint32_t slot;
	const char *id = req->words[2];     /* checked by cli_cmd_check */
	json_t *o;

	if (cli_call_find(srv, id, &slot, &c) < 0)
		return cli_fail(reply, CLI_STATUS_ERROR, "no such call %s", id);
	cli_call_text(&c, cli_now_ms(CLOCK_REALTIME), &t);
	if (req->json) {
		o = cli_call_json_long(&c, &t);
		cli_buf_add_json(out, o);
		cli_buf_add(out, "\n", 1);
		json_decref(o);
	} else {
		cli_call_long_text(out, &c, &t);
	}
	return out->err;
}

/* Has the call left its slot (ended, or the slot already holds another call)? */
static int cli_call_gone(const cli_server_t *srv, uint32_t slot, const char *id)
{
	struct shm_call c;

	return shm_call_read(srv->shm, slot, &c) < 0 || strncmp(c.id, id, sizeof c.id) != 0;
}

/* Watch the slot until the call has gone, at most CLI_KILL_WAIT_MS: 1 when it has. */
static int cli_call_wait_gone(const cli_server_t *srv, uint32_t slot, const char *id)
{
	uint64_t deadline = cli_now_ms(CLOCK_MONOTONIC) + CLI_KILL_WAIT_MS;
	const struct timespec pause = { .tv_nsec = CLI_KILL_POLL_MS * 1000000L };

	for (;;) {
		if (cli_call_gone(srv, slot, id))
			return 1;
		if (cli_now_ms(CLOCK_MONOTONIC) >= deadline)
			return 0;
		nanosleep(&pause, NULL);
	}
}

/* A worker's refusal (a CTL_REPLY with a negative status), for the operator. */
static int cli_kill_refused(const cli_server_t *srv, uint32_t slot, const char *id,
			    unsigned worker, const struct ctl_reply *answer,
			    struct cli_reply *reply)
{
	/* It ended by itself between our look-up and the worker's: nothing left to kill. */
	if (cli_call_gone(srv, slot, id))
		return cli_fail(reply, CLI_STATUS_ERROR, "no such call %s", id);
	return cli_fail(reply, CLI_STATUS_ERROR, "call %s: worker %u: %.150s", id, worker,
			answer->text[0] ? answer->text : strerror(-answer->status));
}

/*
 * `call kill ID`: ask the owning worker to end the call, then wait until it
 * has left the table, so that "killed" is a fact and not a hope.
 */
int cli_call_kill(cli_server_t *srv, const struct cli_cmd_args *req_args, struct cli_buf *out,
		  struct cli_reply *reply)
{
	struct ctl_msg req, answer;
	struct shm_call c;
	unsigned worker;
	uint32_t slot;
	const char *id = req_args->words[2];     /* checked by cli_cmd_check */
	int err;

	if (!srv->ctl_request)
		return cli_fail(reply, CLI_STATUS_ERROR, "call kill is not available: this "
				"daemon has no channel to its workers");
	if (cli_call_find(srv, id, &slot, &c) < 0)
		return cli_fail(reply, CLI_STATUS_ERROR, "no such call %s", id);
	worker = c.worker;
	ctl_init(&req, CTL_KILL_CALL, CTL_MGMT, worker, 0);
	snprintf(req.u.kill_call.id, sizeof req.u.kill_call.id, "%s", id);
	err = srv->ctl_request(srv->ctl_request_arg, &req, &answer);
	if (err == -ETIMEDOUT)
		return cli_fail(reply, CLI_STATUS_ERROR, "worker %u did not answer", worker);
	if (err == -ESRCH)
		return cli_fail(reply, CLI_STATUS_ERROR, "worker %u is not running", worker);
	if (err < 0)
		return cli_fail(reply, CLI_STATUS_ERROR, "cannot reach worker %u: %s", worker,
				strerror(-err));
	if (answer.u.reply.status < 0)
		return cli_kill_refused(srv, slot, id, worker, &answer.u.reply, reply);
	if (!cli_call_wait_gone(srv, slot, id))
		return cli_fail(reply, CLI_STATUS_ERROR, "call %s: worker %u is ending "
				"it, but it is still up after %d ms", id, worker,
				CLI_KILL_WAIT_MS);
	log_info("call %s: killed through the CLI (worker %u)", id, worker);
	cli_buf_printf(out, "call %s killed\n", id);
	return out->err;
}
