/*
 * ctl — the control protocol between b2bua's processes.  See ctl.h.
 *
 * Everything here is about one message at a time: checking it, sending it,
 * reading it, answering it, and the one bounded wait (ctl_request).  Routing
 * is the master's business (master.c), handling each type the addressee's.
 */
#include "b2bua/ctl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "b2bua/log.h"
#include "b2bua/mono.h"

int ctl_payload_size(unsigned type)
{
	switch (type) {
	case CTL_REPLY:       return (int)sizeof(struct ctl_reply);
	case CTL_KILL_CALL:   return (int)sizeof(struct ctl_kill_call);
	case CTL_DRAIN:       return 0;
	case CTL_RELOAD:      return (int)sizeof(struct ctl_reload);
	case CTL_PING:        return 0;
	}
	return -1;
}

int ctl_is_request(unsigned type)
{
	return type == CTL_KILL_CALL || type == CTL_RELOAD || type == CTL_PING;
}

const char *ctl_type_name(unsigned type)
{
	switch (type) {
	case CTL_REPLY:       return "reply";
	case CTL_KILL_CALL:   return "kill_call";
	case CTL_DRAIN:       return "drain";
	case CTL_RELOAD:      return "reload";
	case CTL_PING:        return "ping";
	}
	return "unknown";
}

void ctl_init(struct ctl_msg *m, enum ctl_type type, unsigned from, unsigned to, uint32_t seq)
{
	int size = ctl_payload_size(type);

	memset(m, 0, sizeof *m);
	m->hdr.version = CTL_VERSION;
	m->hdr.type = (uint16_t)type;
	m->hdr.from = (uint16_t)from;
	m->hdr.to = (uint16_t)to;
	m->hdr.seq = seq;
	m->hdr.len = size > 0 ? (uint32_t)size : 0;
}

void ctl_reply_to(const struct ctl_msg *req, int status, const char *text,
		  struct ctl_msg *reply)
{
	ctl_init(reply, CTL_REPLY, req->hdr.to, req->hdr.from, req->hdr.seq);
	reply->u.reply.status = status;
	snprintf(reply->u.reply.text, sizeof reply->u.reply.text, "%s", text ? text : "");
}

static int ctl_peer_ok(unsigned peer)
{
	return peer < CTL_WORKERS_MAX || peer == CTL_MASTER || peer == CTL_MGMT;
}

/* Is there a NUL within the `size` bytes of s? */
static int ctl_terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

/* The strings of a payload must end inside their arrays. */
static int ctl_strings_ok(const struct ctl_msg *m)
{
	switch (m->hdr.type) {
	case CTL_REPLY:
		return ctl_terminated(m->u.reply.text, sizeof m->u.reply.text);
	case CTL_KILL_CALL:
		return ctl_terminated(m->u.kill_call.id, sizeof m->u.kill_call.id);
	}
	return 1;
}

int ctl_decode(const void *buf, size_t len, struct ctl_msg *out)
{
	struct ctl_hdr h;
	int size;

	if (len < sizeof h)
		return -EBADMSG;
	memcpy(&h, buf, sizeof h);
	if (h.version != CTL_VERSION)
		return -EPROTO;
	size = ctl_payload_size(h.type);
	if (size < 0)
		return -EPROTO;
	if (h.len != (uint32_t)size || len != sizeof h + (size_t)size)
		return -EBADMSG;
	if (!ctl_peer_ok(h.from) || !ctl_peer_ok(h.to))
		return -EINVAL;
	memset(out, 0, sizeof *out);
	memcpy(out, buf, len);
	return ctl_strings_ok(out) ? 0 : -EBADMSG;
}

int ctl_send(int fd, const struct ctl_msg *m)
{
	size_t len = sizeof m->hdr + m->hdr.len;

	if (send(fd, m, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		return -errno;
	return 0;
}

/* Did ctl_recv() consume a bad message (so that reading may go on)? */
static int ctl_is_bad(int err)
{
	return err == -EBADMSG || err == -EPROTO || err == -EINVAL;
}

int ctl_recv(int fd, struct ctl_msg *out)
{
	/* One byte more than the largest message: a longer datagram is seen as
	 * too long instead of being cut to a plausible size. */
	unsigned char buf[CTL_MSG_MAX + 1];
	ssize_t n;

	n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (n == 0)
		return -ECONNRESET;
	return ctl_decode(buf, (size_t)n, out);
}

int ctl_request(int fd, const struct ctl_msg *req, struct ctl_msg *reply, int timeout_ms,
		ctl_handle_f *other, void *arg)
{
	int64_t deadline = (int64_t)mono_ms() + timeout_ms;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int err = ctl_send(fd, req);

	if (err < 0)
		return err;
	for (;;) {
		int64_t left = deadline - (int64_t)mono_ms();
		struct ctl_msg m;
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, (int)left);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue;
		err = ctl_recv(fd, &m);
		if (err == -EAGAIN || ctl_is_bad(err))
			continue;   /* nothing, or a bad message: keep waiting for ours */
		if (err < 0)
			return err;
		if (m.hdr.type == CTL_REPLY && m.hdr.seq == req->hdr.seq) {
			*reply = m;
			return 0;
		}
		if (other)
			other(arg, &m);
	}
}

int ctl_read_all(int fd, const char *from, ctl_handle_f *handle, void *arg)
{
	struct ctl_msg m;
	int err;

	while ((err = ctl_recv(fd, &m)) != -EAGAIN) {
		if (ctl_is_bad(err)) {
			log_warn("control: bad message from %s refused (%s)", from, strerror(-err));
			continue;
		}
		if (err < 0)
			return err;
		handle(arg, &m);
	}
	return 0;
}

void ctl_answer(int fd, const struct ctl_msg *req, int status, const char *text)
{
	struct ctl_msg reply;
	int err;

	ctl_reply_to(req, status, text, &reply);
	err = ctl_send(fd, &reply);
	if (err < 0)
		log_warn("control: cannot answer %s: %s", ctl_type_name(req->hdr.type),
			 strerror(-err));
}
