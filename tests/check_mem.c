/*
 * check_mem — worker/mem.c: what is allocated between mem_long_begin() and
 * mem_long_end() comes from the long-lived heap, what is allocated outside
 * from the default one, the brackets nest and restore the default heap, and
 * free() takes a chunk of either heap; mem_call_malloc/calloc serve from a
 * third heap, whatever bracket is open.  Built as the daemon is (mimalloc,
 * HAVE_MIMALLOC) when configure found it; without it (--without-mimalloc,
 * the sanitizers) the brackets are no-ops and that is what is checked.
 * Which heap owns a chunk is asked of mimalloc, not of mem.c.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "worker/mem.h"

#ifdef HAVE_MIMALLOC
#include <mimalloc.h>

START_TEST(test_long_lived_apart)
{
	mi_heap_t *transient = mi_heap_get_default();
	void *t1, *l1, *l2, *t2;

	ck_assert_int_eq(mem_init(), 0);
	ck_assert_str_eq(mem_allocator(), "mimalloc (3 heaps)");
	t1 = malloc(200);
	mem_long_begin();
	l1 = malloc(200);
	mem_long_begin();           /* nested: still the long-lived heap */
	l2 = calloc(1, 1500);
	mem_long_end();
	ck_assert_ptr_ne(mi_heap_get_default(), transient);   /* the outer bracket holds */
	mem_long_end();
	t2 = malloc(200);           /* back on the default heap */
	ck_assert_ptr_eq(mi_heap_get_default(), transient);

	ck_assert(mi_heap_check_owned(transient, t1));
	ck_assert(mi_heap_check_owned(transient, t2));
	ck_assert(!mi_heap_check_owned(transient, l1));
	ck_assert(!mi_heap_check_owned(transient, l2));
	mem_long_begin();           /* the heap of the brackets owns both */
	ck_assert(mi_heap_check_owned(mi_heap_get_default(), l1));
	ck_assert(mi_heap_check_owned(mi_heap_get_default(), l2));
	ck_assert(!mi_heap_check_owned(mi_heap_get_default(), t1));
	mem_long_end();
	/* Freed outside any bracket, from whichever heap. */
	free(l1);
	free(l2);
	free(t1);
	free(t2);
	/* An unbalanced end is ignored: the default heap stays. */
	mem_long_end();
	ck_assert_ptr_eq(mi_heap_get_default(), transient);
}
END_TEST

/* What a call keeps at rest comes from neither the default heap nor the
 * dialogs' heap, whatever bracket is open. */
START_TEST(test_call_heap_apart)
{
	mi_heap_t *transient = mi_heap_get_default();
	void *c1, *c2, *l1;

	ck_assert_int_eq(mem_init(), 0);
	c1 = mem_call_malloc(180);
	mem_long_begin();
	l1 = malloc(180);
	c2 = mem_call_calloc(1, 600);
	ck_assert(!mi_heap_check_owned(mi_heap_get_default(), c1));
	ck_assert(!mi_heap_check_owned(mi_heap_get_default(), c2));
	ck_assert(mi_heap_check_owned(mi_heap_get_default(), l1));
	mem_long_end();
	ck_assert(!mi_heap_check_owned(transient, c1));
	ck_assert(!mi_heap_check_owned(transient, c2));
	ck_assert_ptr_nonnull(c2);
	for (size_t i = 0; i < 600; i++)
		ck_assert_int_eq(((unsigned char *)c2)[i], 0);
	free(c1);
	free(c2);
	free(l1);
}
END_TEST

#else

START_TEST(test_long_lived_apart)
{
	void *p;

	ck_assert_int_eq(mem_init(), 0);
	ck_assert_str_eq(mem_allocator(), "libc malloc (1 heap)");
	mem_long_begin();
	p = malloc(200);
	mem_long_end();
	mem_long_end();
	ck_assert_ptr_nonnull(p);
	free(p);
	p = mem_call_calloc(1, 64);
	ck_assert_ptr_nonnull(p);
	free(p);
}
END_TEST

#endif

int main(void)
{
	Suite *s = suite_create("mem");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_long_lived_apart);
#ifdef HAVE_MIMALLOC
	tcase_add_test(tc, test_call_heap_apart);
#endif
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
