/*
 * board — see board.h.
 *
 * Layout: the header, then the bytes.  `seq` is the sequence counter
 * (odd: being written); gen and len are written inside the odd window and
 * read only between two equal even values.
 */
#include "shm/board.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct board_hdr {
	_Atomic uint32_t seq;
	uint32_t gen;
	size_t len;
};

struct board {
	struct board_hdr *hdr;   /* the shared mapping: header, then the bytes */
	size_t size;             /* bytes after the header */
	size_t map_len;
	uint32_t last_gen;       /* the master's last generation */
};

int board_create(size_t size, board_t **out)
{
	board_t *b = calloc(1, sizeof *b);
	void *p;

	if (b == NULL)
		return -ENOMEM;
	b->size = size;
	b->map_len = sizeof(struct board_hdr) + size;
	p = mmap(NULL, b->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		int err = errno;

		free(b);
		return -err;
	}
	b->hdr = p;   /* an anonymous mapping starts zeroed: seq 0, gen 0 */
	*out = b;
	return 0;
}

void board_destroy(board_t *b)
{
	if (b == NULL)
		return;
	munmap(b->hdr, b->map_len);
	free(b);
}

int board_put(board_t *b, const void *data, size_t len, uint32_t *gen)
{
	if (len > b->size)
		return -EMSGSIZE;
	if (++b->last_gen == 0)
		b->last_gen = 1;
	atomic_fetch_add_explicit(&b->hdr->seq, 1, memory_order_acq_rel);     /* odd */
	atomic_thread_fence(memory_order_release);
	b->hdr->gen = b->last_gen;
	b->hdr->len = len;
	memcpy(b->hdr + 1, data, len);
	atomic_fetch_add_explicit(&b->hdr->seq, 1, memory_order_release);     /* even */
	*gen = b->last_gen;
	return 0;
}

int board_get(const board_t *b, uint32_t gen, void *out, size_t len)
{
	struct board_hdr *h = b->hdr;
	uint32_t s1 = atomic_load_explicit(&h->seq, memory_order_acquire);
	uint32_t s2;
	int ret = 0;

	if (s1 & 1u || h->gen != gen)
		return -ESTALE;
	if (h->len != len)
		ret = -EMSGSIZE;
	else
		memcpy(out, h + 1, len);
	atomic_thread_fence(memory_order_acquire);
	s2 = atomic_load_explicit(&h->seq, memory_order_relaxed);
	return s1 == s2 ? ret : -ESTALE;
}
