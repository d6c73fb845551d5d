/*
 * board — one block of bytes that the master publishes and every child
 * copies: how a reloaded configuration reaches the workers and the
 * management process.
 *
 * Design note.  The master reads and checks the configuration file once
 * and publishes the result here; a child told of generation N
 * (CTL_RELOAD) copies exactly what the master checked, so a file edited
 * again between the master's read and a worker's can never split the
 * processes between two versions.  One writer (the master), many readers,
 * no locks: a sequence counter is odd while the master writes, and a
 * reader that saw it odd or changed across its copy refuses the copy
 * (-ESTALE: a newer generation is on its way).  The region is mapped by
 * the master before the first fork, like the call table, and never
 * resized; a child restarted later inherits the master's own copy of the
 * configuration by fork and never needs the board.
 */
#ifndef B2BUA_BOARD_H
#define B2BUA_BOARD_H

#include <stddef.h>
#include <stdint.h>

typedef struct board board_t;

/* Map a board of `size` bytes, shared with every process forked after. */
int board_create(size_t size, board_t **out);
void board_destroy(board_t *b);

/* The master: publish `len` bytes (at most the board's size); the new
 * generation in *gen (never 0).  -EMSGSIZE when they do not fit. */
int board_put(board_t *b, const void *data, size_t len, uint32_t *gen);

/* A child: copy generation `gen` into out[len].  -ESTALE when the board
 * holds another generation or is being written, -EMSGSIZE for another length. */
int board_get(const board_t *b, uint32_t gen, void *out, size_t len);

#endif
