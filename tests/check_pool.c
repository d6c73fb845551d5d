/*
 * check_pool — the calls' pool of worker/b2b_pool.c: nothing is touched at
 * creation, an entry's pages are first touched by its user, released
 * entries are taken again before new ones (the high-water mark and the
 * resident memory stay at the most entries out at once), the capacity is
 * exact, and entries come back zero-filled.  Residency is asked of the
 * kernel (mincore), not of the pool.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "worker/b2b_pool.h"

#define ENTRY    3000u    /* not a page multiple, as struct b2b_call */
#define CAPACITY 20000u

/* Pages of entries 0..CAPACITY-1 (entry 0 starts the mapping) in memory. */
static size_t resident_pages(void *entry0)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t len = (size_t)ENTRY * CAPACITY;
	size_t npages = (len + page - 1) / page;
	unsigned char *vec = malloc(npages);
	size_t n = 0;

	ck_assert_ptr_nonnull(vec);
	ck_assert_int_eq(mincore(entry0, len, vec), 0);
	for (size_t i = 0; i < npages; i++)
		n += vec[i] & 1;
	free(vec);
	return n;
}

/* Take n entries and use them (write every byte), as calls do. */
static void take(b2b_pool_t *pool, void **out, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		out[i] = b2b_pool_get(pool);
		ck_assert_ptr_nonnull(out[i]);
		memset(out[i], 0xab, ENTRY);
	}
}

START_TEST(test_untouched_until_used)
{
	b2b_pool_t *pool = NULL;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *e[100];

	ck_assert_int_eq(b2b_pool_create(ENTRY, CAPACITY, &pool), 0);
	ck_assert_uint_eq(b2b_pool_used(pool), 0);
	ck_assert_ptr_null(b2b_pool_at(pool, 0));
	take(pool, e, 1);
	/* Taking entry 0 touched nothing; its user's writes touched its pages only. */
	ck_assert_uint_le(resident_pages(e[0]), (ENTRY + page - 1) / page + 1);
	take(pool, e + 1, 99);
	ck_assert_uint_eq(b2b_pool_used(pool), 100);
	ck_assert_uint_le(resident_pages(e[0]), (100 * ENTRY) / page + 2);
	ck_assert_ptr_eq(b2b_pool_at(pool, 99), e[99]);
	ck_assert_ptr_null(b2b_pool_at(pool, 100));
	b2b_pool_destroy(pool);
}
END_TEST

START_TEST(test_released_entries_reused)
{
	b2b_pool_t *pool = NULL;
	void *e[100], *again[100];
	static const char zero[ENTRY];

	ck_assert_int_eq(b2b_pool_create(ENTRY, CAPACITY, &pool), 0);
	take(pool, e, 100);
	size_t before = resident_pages(b2b_pool_at(pool, 0));
	/* A churn of calls never above 100 at once: the same 100 entries. */
	for (int round = 0; round < 50; round++) {
		for (unsigned i = 0; i < 100; i++)
			b2b_pool_put(pool, e[i]);
		take(pool, again, 100);
		for (unsigned i = 0; i < 100; i++)
			e[i] = again[i];
	}
	ck_assert_uint_eq(b2b_pool_used(pool), 100);
	ck_assert_uint_eq(resident_pages(b2b_pool_at(pool, 0)), before);
	/* The last one released is the first taken again, zero-filled. */
	b2b_pool_put(pool, e[42]);
	void *x = b2b_pool_get(pool);
	ck_assert_ptr_eq(x, e[42]);
	ck_assert_mem_eq(x, zero, ENTRY);
	b2b_pool_destroy(pool);
}
END_TEST

START_TEST(test_capacity_exact)
{
	b2b_pool_t *pool = NULL;
	void *e[64];

	ck_assert_int_eq(b2b_pool_create(ENTRY, 64, &pool), 0);
	for (unsigned i = 0; i < 64; i++)
		ck_assert_ptr_nonnull(e[i] = b2b_pool_get(pool));
	ck_assert_ptr_null(b2b_pool_get(pool));
	b2b_pool_put(pool, e[7]);
	ck_assert_ptr_eq(b2b_pool_get(pool), e[7]);
	ck_assert_ptr_null(b2b_pool_get(pool));
	/* Something that is not an entry of this pool is not taken back. */
	b2b_pool_put(pool, (char *)e[0] - 1);
	ck_assert_ptr_null(b2b_pool_get(pool));
	b2b_pool_destroy(pool);
}
END_TEST

START_TEST(test_bad_arguments)
{
	b2b_pool_t *pool = NULL;

	ck_assert_int_eq(b2b_pool_create(0, 10, &pool), -EINVAL);
	ck_assert_int_eq(b2b_pool_create(ENTRY, 0, &pool), -EINVAL);
	ck_assert_int_eq(b2b_pool_create(SIZE_MAX / 4, 16, &pool), -EINVAL);
	ck_assert_int_eq(b2b_pool_create(ENTRY, 10, NULL), -EINVAL);
	ck_assert_uint_eq(b2b_pool_used(NULL), 0);
	ck_assert_ptr_null(b2b_pool_at(NULL, 0));
	b2b_pool_destroy(NULL);
}
END_TEST

static Suite *pool_suite(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_untouched_until_used);
	tcase_add_test(tc, test_released_entries_reused);
	tcase_add_test(tc, test_capacity_exact);
	tcase_add_test(tc, test_bad_arguments);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pool_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
