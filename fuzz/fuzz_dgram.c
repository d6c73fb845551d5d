/*
 * fuzz_dgram — a datagram from anyone, as worker/dgram.c meets it before
 * Sofia does: read for routing (overload_read(): Call-ID and To tag of any
 * request), classified and answered by overload control (overload_parse(),
 * overload_answer()), and passed through a hand-over queue
 * (shm/handover.c) to come out with the same bytes and source.  Every span
 * the reader returns must lie inside the datagram, which is passed as it
 * arrives, not NUL-terminated, so a read past its end shows.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "shm/handover.h"
#include "worker/overload.h"

static handover_t *fuzz_ho;

static void fuzz_inside(const uint8_t *data, size_t size, struct overload_span sp)
{
	if (sp.p == NULL && sp.len == 0)
		return;
	if ((const uint8_t *)sp.p < data || (const uint8_t *)sp.p + sp.len > data + size)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in6 from = { .sin6_family = AF_INET6, .sin6_port = htons(5060) };
	struct overload_msg m;
	struct handover_msg out;
	static char answer[8192];
	uint64_t cur;

	if (overload_read((const char *)data, size, &m) == 0) {
		if (m.call_id.len == 0 || m.n_via == 0)
			abort();
		fuzz_inside(data, size, m.call_id);
		fuzz_inside(data, size, m.to_tag);
		fuzz_inside(data, size, m.from);
		for (unsigned i = 0; i < m.n_via; i++)
			fuzz_inside(data, size, m.via[i]);
	}
	if (overload_parse((const char *)data, size, "ovl0123456789abcdef", &m) ==
	    OVERLOAD_NEW_INVITE) {
		int n = overload_answer(&m, "ovl0123456789abcdef", 5, answer, sizeof answer);

		if (n > (int)sizeof answer)
			abort();
	}
	if (fuzz_ho == NULL && handover_create(2, &fuzz_ho) < 0)
		abort();
	if (size > HANDOVER_DGRAM_MAX)
		return 0;
	if (handover_push(fuzz_ho, 0, 1, data, size, (struct sockaddr *)&from, sizeof from, 7) < 0)
		abort();   /* one record at a time always fits */
	cur = handover_cursor(fuzz_ho, 1, 0);
	if (handover_peek(fuzz_ho, 1, 0, &cur, &out) < 0 || out.len != size ||
	    (size && memcmp(out.data, data, size) != 0) || out.fromlen != sizeof from ||
	    memcmp(out.from, &from, sizeof from) != 0 || out.rx_ns != 7)
		abort();
	handover_release(fuzz_ho, 1, 0, out.end);
	return 0;
}
