/*
 * shm_invite — the text of a call's INVITEs in its record (shm.h, "the
 * INVITEs of a call"): packing an element after the previous one, and
 * reading one back from a copy that is checked, not trusted.
 *
 * Design note.  Pure: a record is bytes, so the rules of its format live
 * here, apart from where records are kept and who may write them (the
 * call table, shm.c).
 */
#include "shm/shm.h"

#include <errno.h>
#include <string.h>

int shm_invite_pack(struct shm_invite *inv, unsigned idx, const char *text, size_t len)
{
	size_t start;

	if (!inv || !text || len == 0 || memchr(text, '\0', len) != NULL)
		return -EINVAL;
	if (idx == 0)
		inv->n = 0;
	if (idx != inv->n)
		return -EINVAL;
	if (idx >= SHM_INVITE_MAX)
		return -ENOSPC;
	start = idx ? inv->end[idx - 1] : 0;
	if (len + 1 > sizeof inv->text - start)
		return -E2BIG;
	memcpy(inv->text + start, text, len);
	inv->text[start + len] = '\0';
	inv->end[idx] = (uint16_t)(start + len + 1);
	inv->n = (uint16_t)(idx + 1);
	return 0;
}

int shm_invite_get(const struct shm_invite *inv, unsigned idx, const char **text, size_t *len)
{
	size_t start, end;

	if (!inv || !text || !len || idx >= inv->n || inv->n > SHM_INVITE_MAX)
		return -ENOENT;
	/* A record copied from shared memory is checked, not trusted. */
	start = idx ? inv->end[idx - 1] : 0;
	end = inv->end[idx];
	if (end <= start + 1 || end > sizeof inv->text || inv->text[end - 1] != '\0')
		return -ENOENT;
	*text = inv->text + start;
	*len = end - start - 1;
	return 0;
}
