/*
 * ctl — the control protocol between b2bua's processes.
 *
 * Design note.  In the spirit of nginx's ngx_channel_t: every child (each
 * worker and the management process) has one SOCK_SEQPACKET socketpair to
 * the master, made before its fork.  A message is one datagram holding one
 * struct ctl_msg: a fixed header (version, type, sender, addressee, sequence
 * number, payload length) and the payload struct of its type.  Every
 * process is a fork of the same executable, so the structs travel as they
 * are; ctl_decode() still checks every byte that arrives (version, type,
 * exact length, addressees, NUL-terminated strings), so a malformed or
 * truncated message is refused with an error and can never crash a reader.
 *
 * Routing.  The master is the switch: it reads each child's channel and
 * passes a message on to its addressee's channel, never waiting (a full
 * channel drops the message with a warning; requests are then answered
 * "not delivered" by the master).  Messages for the master itself are the
 * answers to its own requests.  So a worker talks to another worker, and
 * the management process to a worker, without the master ever blocking on
 * any of them.
 *
 * Requests and answers.  A request carries a sequence number chosen by its
 * sender; its answer (CTL_REPLY) carries the same number, a status (0 or a
 * negative errno) and a short text.  ctl_request() sends a request and waits
 * for that answer for a bounded time; anything else that arrives meanwhile
 * is handed to a callback, so nothing is lost and a late answer to an
 * earlier, timed-out request is recognised as stale.
 *
 *   type              from → to              answered  payload
 *   CTL_KILL_CALL     management → worker    yes       the call id (b2bua-cli call kill)
 *   CTL_DRAIN         master → management    no        draining started (SIGTERM)
 *   CTL_RELOAD        management → master    yes       reload the file (b2bua-cli reload);
 *                                                      answered once every child has taken
 *                                                      it, with the applied and
 *                                                      restart_needed keys (config_reload.h)
 *   CTL_RELOAD        master → any child     yes       take generation N of the board
 *                                                      (shm/board.h): the new configuration
 *   CTL_PING          master → any child     yes       none: the answer says the
 *                                                      child's loop runs (notify.h)
 *   CTL_REPLY         any → requester        -         status and text
 */
#ifndef B2BUA_CTL_H
#define B2BUA_CTL_H

#include <stddef.h>
#include <stdint.h>

#include "shm/shm.h"

#define CTL_VERSION 1

/* Addressees: workers are 0 .. CTL_WORKERS_MAX - 1. */
#define CTL_WORKERS_MAX 1024
#define CTL_MASTER      0xffffu
#define CTL_MGMT        0xfffeu

enum ctl_type {
	CTL_REPLY = 1,
	CTL_KILL_CALL,
	CTL_DRAIN,
	CTL_RELOAD,
	CTL_PING,
	CTL_TYPE__END
};

/* Longest text of an answer, NUL included: a reload's answer names keys. */
#define CTL_TEXT_MAX 2048

struct ctl_hdr {
	uint16_t version;        /* CTL_VERSION */
	uint16_t type;           /* enum ctl_type */
	uint16_t from;           /* a worker index, CTL_MASTER or CTL_MGMT */
	uint16_t to;
	uint32_t seq;            /* chosen by a request's sender; copied into its answer */
	uint32_t len;            /* payload bytes after the header: exactly the type's size */
};

struct ctl_reply {
	int32_t status;          /* 0, or a negative errno */
	char text[CTL_TEXT_MAX]; /* "" or why, for people */
};

struct ctl_kill_call {
	char id[SHM_ID_MAX];     /* the call id */
};

struct ctl_reload {
	uint32_t generation;     /* of the board; 0 in the management process's request */
};

struct ctl_msg {
	struct ctl_hdr hdr;
	union {
		struct ctl_reply reply;
		struct ctl_kill_call kill_call;
		struct ctl_reload reload;
	} u;
};

/* The largest datagram: the receive buffer of every reader. */
#define CTL_MSG_MAX sizeof(struct ctl_msg)

/* Payload size of `type`, or -1 for a type that does not exist. */
int ctl_payload_size(unsigned type);

/* Does a message of `type` wait for a CTL_REPLY (the "answered" column above)? */
int ctl_is_request(unsigned type);

/* Name of a type, for logs ("kill_call"...); "unknown" for others. */
const char *ctl_type_name(unsigned type);

/* Fill the header of *m (and zero its payload) for a message of `type`. */
void ctl_init(struct ctl_msg *m, enum ctl_type type, unsigned from, unsigned to, uint32_t seq);

/* Make *reply the answer to *req: status, text (may be NULL), same seq, reversed peers. */
void ctl_reply_to(const struct ctl_msg *req, int status, const char *text,
		  struct ctl_msg *reply);

/*
 * Check `len` bytes received and copy them into *out.  Returns 0, or
 *   -EBADMSG   shorter than the header, a payload length that is not the
 *              type's, or a string without its NUL
 *   -EPROTO    another version, or an unknown type
 *   -EINVAL    an addressee or sender that is neither a worker index below
 *              CTL_WORKERS_MAX, CTL_MASTER nor CTL_MGMT
 */
int ctl_decode(const void *buf, size_t len, struct ctl_msg *out);

/* Send one message without waiting: 0, or -errno (-EAGAIN: the channel is full). */
int ctl_send(int fd, const struct ctl_msg *m);

/*
 * Read one message without waiting: 0 and *out, -EAGAIN when none is
 * waiting, -ECONNRESET when the peer has gone, or ctl_decode()'s error for a
 * bad message (which is consumed, so the caller can go on reading).
 */
int ctl_recv(int fd, struct ctl_msg *out);

/* Handles one message (for ctl_read_all, and for what arrives while
 * ctl_request() waits for its answer). */
typedef void ctl_handle_f(void *arg, const struct ctl_msg *m);

/*
 * Read every message waiting on `fd` and hand each to `handle`.  A bad
 * message is logged as coming from `from` ("the master", "worker 2"...)
 * and skipped.  Returns 0 when none is left, -ECONNRESET when the peer has
 * gone, or another negative errno of the socket.
 */
int ctl_read_all(int fd, const char *from, ctl_handle_f *handle, void *arg);

/* Answer request *req on `fd` with status and text (may be NULL); a
 * failure to send is logged. */
void ctl_answer(int fd, const struct ctl_msg *req, int status, const char *text);


/*
 * Send request *req on `fd` and wait at most `timeout_ms` for its answer
 * (a CTL_REPLY with the same seq).  Returns 0 with *reply, -ETIMEDOUT, or
 * the error of sending or of the channel.  Other messages that arrive
 * meanwhile go to `other` (may be NULL: then they are dropped).
 */
int ctl_request(int fd, const struct ctl_msg *req, struct ctl_msg *reply, int timeout_ms,
		ctl_handle_f *other, void *arg);

#endif
