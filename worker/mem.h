/*
 * mem — where a worker's long-lived allocations go.
 *
 * Sofia-SIP allocates with malloc().  A call's dialogs (nta_leg) and its
 * SDP copies live as long as the call; its transactions and messages, about
 * four times as many bytes, live at most 32 s (64 x T1).  From one heap the
 * long-lived chunks end up scattered over the pages the transient ones
 * filled, and those pages cannot go back to the kernel when the transients
 * are freed.  mem_long_begin() ... mem_long_end() brackets the code that
 * allocates long-lived call state, so that it comes from a heap of its own
 * (see mem.c).
 */
#ifndef B2BUA_MEM_H
#define B2BUA_MEM_H

#include <stddef.h>

/* Make the long-lived heap, once per process, before any call.  Returns 0,
 * or -ENOMEM (then the brackets below are no-ops and one heap serves all). */
int mem_init(void);

/* "mimalloc (3 heaps)" or "libc malloc (1 heap)": for the worker's start-up log. */
const char *mem_allocator(void);

/* Until mem_long_end(), malloc() serves from the long-lived heap.  The pair
 * may nest; free() works on any chunk whatever heap it came from. */
void mem_long_begin(void);
void mem_long_end(void);

/* Call state of ours that lasts as long as the call, also while it is at
 * rest (SDP copies, forwarding state): malloc()/calloc() from a heap of its
 * own; free() releases it. */
void *mem_call_malloc(size_t size);
void *mem_call_calloc(size_t n, size_t size);

/* Give free memory back to the system (a quiet worker, worker.c): every
 * mimalloc heap collected, or glibc's malloc_trim(0). */
void mem_trim(void);

#endif
