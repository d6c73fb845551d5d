/*
 * overload — the raw-datagram side of overload control: which datagrams a
 * shedding worker may refuse, and the bytes of its stateless 503.
 *
 * Design note.  When a worker sheds load (worker/b2b_overload.c decides
 * when), a new INVITE must be refused for far less than accepting one
 * costs: no Sofia parse, no transaction, no allocation.  These functions
 * read the datagram as it came from the socket:
 *   - overload_parse() finds the request line and the five headers a
 *     response needs (Via, From, To, Call-ID, CSeq; long or compact names)
 *     and says what the datagram is: a new INVITE (no To tag), the ACK of
 *     one of our own overload 503s (its To tag is ours), or anything else;
 *   - overload_read() is the same reading for any request; the public
 *     port's router (worker/dgram.c) finds a datagram's Call-ID and To tag
 *     with it;
 *   - overload_answer() writes the 503 for a new INVITE (RFC 3261 8.2.6:
 *     the Vias, From, Call-ID and CSeq copied, our tag added to To,
 *     Retry-After, no body) into the caller's buffer.
 * Whatever they cannot read with certainty is OVERLOAD_OTHER and goes to
 * Sofia, which answers it properly: the gate never refuses what it did not
 * understand, and never touches a request of an existing dialog (it has a
 * To tag) or a response.  Pure: no I/O; tests/check_overload.c.
 */
#ifndef B2BUA_OVERLOAD_H
#define B2BUA_OVERLOAD_H

#include <stddef.h>

/* More Via header lines than this: left to Sofia. */
#define OVERLOAD_MAX_VIAS 16
/* Our 503's To tag, NUL included (b2b_overload.c makes it per worker). */
#define OVERLOAD_TAG_MAX 32

enum overload_kind {
	OVERLOAD_OTHER = 0,     /* for Sofia: everything not below, and anything unclear */
	OVERLOAD_NEW_INVITE,    /* INVITE without a To tag: may be refused with 503 */
	OVERLOAD_OUR_ACK,       /* ACK of one of our 503s: may be dropped */
};

struct overload_span {
	const char *p;
	size_t len;
};

/* What overload_parse() found: spans into the datagram. */
struct overload_msg {
	struct overload_span via[OVERLOAD_MAX_VIAS];
	unsigned n_via;
	struct overload_span from, to, call_id, cseq;
	struct overload_span to_tag;   /* len 0: To has no tag */
};

/* Read any request: the headers above and the To tag.  0 and *m, or -1
 * when it is not a request that can be read with certainty (a response,
 * garbage, a header twice, no Call-ID...).  worker/dgram.c routes the
 * public port's datagrams with it. */
int overload_read(const char *msg, size_t len, struct overload_msg *m);

/* Read a response's From tag (the tag of whoever sent the request): 0 and
 * *from_tag, or -1 when it is no response or has no readable From tag.
 * worker/dgram.c routes responses on the public port with it: a request
 * b2bua sent from the public port (to a subscriber behind NAT) carries the
 * sending worker's tag, and its answer may reach any worker. */
int overload_read_response(const char *msg, size_t len, struct overload_span *from_tag);

/* Classify the datagram [msg, msg + len); `tag` is our 503's To tag.
 * Fills *m for OVERLOAD_NEW_INVITE and OVERLOAD_OUR_ACK. */
enum overload_kind overload_parse(const char *msg, size_t len, const char *tag,
				  struct overload_msg *m);

/* The 503 for a new INVITE parsed into *m, with To tag `tag` and
 * Retry-After `retry_after` seconds: its length, or -ENOSPC. */
int overload_answer(const struct overload_msg *m, const char *tag, unsigned retry_after,
		    char *out, size_t size);

#endif
