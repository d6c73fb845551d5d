/*
 * Transitional: the digest module moved to b2bua/digest.h (shared by the
 * workers and the management side).  Only cli/cli_server.c and
 * tests/check_cli.c still include this path; delete this file once they
 * include "b2bua/digest.h".
 */
#include "b2bua/digest.h"
