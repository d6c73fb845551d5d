/*
 * mem — where a worker's long-lived allocations go.
 *
 * Design note.  An established call keeps about 3.7 KB of heap: its two
 * nta_leg dialogs (their homes and copies of Call-ID, tags, URIs, route
 * set and target) and the SDP copies of its session timers.  Setting it up
 * allocated about 13 KB more (messages, transactions), which NTA keeps for
 * 64 x T1 = 32 s.  With one heap the two kinds interleave, page by page;
 * when the transactions go, most pages still hold a few live dialog bytes,
 * so the heap stays as large as the set-up traffic made it (measured with
 * glibc's malloc: 16.5 KB resident per established call, bench/README.md).
 *
 * The fix is to keep the two kinds apart.  mimalloc (Debian's
 * libmimalloc2.0, linked ahead of libc when configure finds it, so it is
 * the process's malloc) serves malloc() from the calling thread's
 * *default heap*, and lets us switch it: mem_long_begin() makes a heap of
 * our own the default while a dialog is created or changed, mem_long_end()
 * switches back.  The transient heap's pages then empty completely when
 * NTA's timers free them, and mimalloc returns them to the kernel.
 * free() needs no bracket: mimalloc finds a chunk's heap from its address.
 *
 * A call at rest (worker/b2b_rest.c) frees its dialogs but keeps what is
 * ours: the SDP copies of its session timers, its forwarding state.  In
 * the dialogs' heap those few hundred bytes would keep a page of freed
 * dialogs resident each, so they come from a third heap (mem_call_malloc,
 * mem_call_calloc), whose pages hold nothing else.
 *
 * A worker is single-threaded, so the switch is a thread-local pointer
 * store: nothing on the hot path.  Built without mimalloc (or with the
 * sanitizers, which bring their own malloc) both brackets do nothing:
 * configure passes -DHAVE_MIMALLOC=1 to the daemon's objects only.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#include "worker/mem.h"

#ifdef HAVE_MIMALLOC
#include <mimalloc.h>

static mi_heap_t *mem_long_heap;  /* the long-lived heap, never destroyed */
static mi_heap_t *mem_call_heap;  /* what a call at rest keeps, never destroyed */
static mi_heap_t *mem_saved;      /* the default heap to restore */
static unsigned mem_depth;        /* nesting of mem_long_begin() */

int mem_init(void)
{
	if (mem_long_heap == NULL)
		mem_long_heap = mi_heap_new();
	if (mem_call_heap == NULL)
		mem_call_heap = mi_heap_new();
	return mem_long_heap != NULL && mem_call_heap != NULL ? 0 : -ENOMEM;
}

const char *mem_allocator(void)
{
	if (mem_long_heap != NULL && mem_call_heap != NULL)
		return "mimalloc (3 heaps)";
	return mem_long_heap != NULL ? "mimalloc (2 heaps)" : "mimalloc (1 heap)";
}

void mem_long_begin(void)
{
	if (mem_long_heap == NULL)
		return;
	if (mem_depth++ == 0)
		mem_saved = mi_heap_set_default(mem_long_heap);
}

void mem_long_end(void)
{
	if (mem_long_heap == NULL || mem_depth == 0)
		return;
	if (--mem_depth == 0)
		mi_heap_set_default(mem_saved);
}

void *mem_call_malloc(size_t size)
{
	return mem_call_heap != NULL ? mi_heap_malloc(mem_call_heap, size) : malloc(size);
}

void *mem_call_calloc(size_t n, size_t size)
{
	return mem_call_heap != NULL ? mi_heap_calloc(mem_call_heap, n, size) : calloc(n, size);
}

/* Every heap gives its empty pages back to the kernel now, rather than at
 * its next allocation (mimalloc decommits lazily, and a quiet worker does
 * not allocate). */
void mem_trim(void)
{
	if (mem_long_heap != NULL)
		mi_heap_collect(mem_long_heap, true);
	if (mem_call_heap != NULL)
		mi_heap_collect(mem_call_heap, true);
	mi_collect(true);
}

#else /* !HAVE_MIMALLOC */

int mem_init(void)
{
	return 0;
}

const char *mem_allocator(void)
{
	return "libc malloc (1 heap)";
}

void mem_long_begin(void)
{
}

void mem_long_end(void)
{
}

void *mem_call_malloc(size_t size)
{
	return malloc(size);
}

void *mem_call_calloc(size_t n, size_t size)
{
	return calloc(n, size);
}

void mem_trim(void)
{
	malloc_trim(0);
}

#endif
