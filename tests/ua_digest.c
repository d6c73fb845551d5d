/*
 * ua_digest — a minimal SIP user agent that registers with digest
 * authentication, for tests/e2e/register_sha256.sh.
 *
 * Design note.  sipp 3.6 cannot answer the SHA-256 challenge that the
 * registrar offers first (RFC 8760), so this client plays call flow 1 itself
 * with real SIP over UDP on loopback:
 *
 *   REGISTER (no credentials) -> 401 -> REGISTER with Authorization -> 200
 *
 * The 401 is parsed with Sofia-SIP's message parser; every WWW-Authenticate
 * challenge is printed in the order received ("challenge 1: SHA-256 ..."),
 * and the one of the requested algorithm (-a sha256, the default, or -a md5)
 * is answered.  With -f the requested algorithm is used even when the 401
 * offers no challenge of it (with the first challenge's realm and nonce):
 * a client that tries an algorithm the registrar did not offer.  HA1 comes from digest_ha1() (b2bua/digest.h); HA2 and the
 * response are computed here with nettle, independently of the daemon's
 * verifier, and then checked against digest_verify() before sending, so a
 * mismatch between the two implementations is reported as such.
 *
 * Every wait is bounded: a request is retransmitted every 500 ms until a
 * final answer or the -w timeout.
 *
 * usage: ua_digest -l LOCAL_IP[:PORT] -r SERVER_IP:PORT -u USER -p PASSWORD
 *                  [-a sha256|md5] [-f] [-d DOMAIN] [-e EXPIRES] [-w TIMEOUT_MS]
 * DOMAIN (the AOR's host) defaults to SERVER_IP.  Prints the challenges,
 * "final: CODE PHRASE" and the Contact headers of the final answer.
 * Exit status: 0 on 200, 1 on another final answer (e.g. 401, 403),
 * 2 on a usage, network or parse error, 3 on a timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nettle/md5.h>
#include <nettle/sha2.h>
#include <sofia-sip/msg.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_parser.h>

#include "b2bua/digest.h"

#define UA_MSG_MAX 4096
#define UA_RETRANSMIT_MS 500
#define UA_MAX_CHALLENGES 8

enum ua_exit {
	UA_OK = 0,
	UA_REFUSED = 1,
	UA_ERROR = 2,
	UA_TIMEOUT = 3,
};

struct ua {
	int fd;
	struct sockaddr_in local, server;
	char local_text[64];     /* "ip:port" as bound */
	char server_text[64];
	const char *user, *password, *domain;
	enum digest_alg alg;
	int force;               /* -f: answer with alg even when not offered */
	int expires;
	int timeout_ms;
	char call_id[64], from_tag[32];
};

/* One challenge of a 401, values unquoted. */
struct ua_challenge {
	char algorithm[16];
	char realm[DIGEST_REALM_MAX];
	char nonce[DIGEST_NONCE_MAX];
	char qop[32];
};

/* ------------------------------------------------------------ helpers */

static int ua_random_hex(char *out, size_t hex_len)
{
	uint8_t bin[32];
	size_t n = (hex_len + 1) / 2;

	if (n > sizeof bin || getrandom(bin, n, 0) != (ssize_t)n)
		return -EIO;
	for (size_t i = 0; i < hex_len; i++)
		out[i] = "0123456789abcdef"[(bin[i / 2] >> (i % 2 ? 0 : 4)) & 0xf];
	out[hex_len] = '\0';
	return 0;
}

static long ua_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* "ip" or "ip:port" into *sa; port 0 when absent. */
static int ua_parse_addr(const char *text, struct sockaddr_in *sa)
{
	char ip[64];
	const char *colon = strrchr(text, ':');
	size_t len = colon ? (size_t)(colon - text) : strlen(text);

	if (len == 0 || len >= sizeof ip)
		return -EINVAL;
	memcpy(ip, text, len);
	ip[len] = '\0';
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1)
		return -EINVAL;
	sa->sin_port = htons(colon ? (uint16_t)atoi(colon + 1) : 0);
	return 0;
}

static void ua_addr_text(const struct sockaddr_in *sa, char *out, size_t size)
{
	char ip[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof ip);
	snprintf(out, size, "%s:%u", ip, ntohs(sa->sin_port));
}

/* H(parts[0]:parts[1]:...) as lowercase hex, by the challenge's algorithm. */
static void ua_hash_hex(enum digest_alg alg, const char *const parts[], size_t n, char *out)
{
	uint8_t bin[SHA256_DIGEST_SIZE];
	size_t len = alg == DIGEST_SHA256 ? SHA256_DIGEST_SIZE : MD5_DIGEST_SIZE;
	struct sha256_ctx sha;
	struct md5_ctx md5;

	sha256_init(&sha);
	md5_init(&md5);
	for (size_t i = 0; i < n; i++) {
		const char *p = i ? ":" : "";

		if (alg == DIGEST_SHA256) {
			sha256_update(&sha, strlen(p), (const uint8_t *)p);
			sha256_update(&sha, strlen(parts[i]), (const uint8_t *)parts[i]);
		} else {
			md5_update(&md5, strlen(p), (const uint8_t *)p);
			md5_update(&md5, strlen(parts[i]), (const uint8_t *)parts[i]);
		}
	}
	if (alg == DIGEST_SHA256)
		sha256_digest(&sha, len, bin);
	else
		md5_digest(&md5, len, bin);
	for (size_t i = 0; i < len; i++)
		sprintf(out + 2 * i, "%02x", bin[i]);
}

/* ------------------------------------------------------------ SIP */

static int ua_build_register(const struct ua *ua, unsigned cseq, const char *authorization,
			     char *out, size_t size)
{
	char branch[24];
	int n;

	if (ua_random_hex(branch, 16) < 0)
		return -EIO;
	n = snprintf(out, size,
		     "REGISTER sip:%s SIP/2.0\r\n"
		     "Via: SIP/2.0/UDP %s;branch=z9hG4bK%s\r\n"
		     "Max-Forwards: 70\r\n"
		     "From: <sip:%s@%s>;tag=%s\r\n"
		     "To: <sip:%s@%s>\r\n"
		     "Call-ID: %s\r\n"
		     "CSeq: %u REGISTER\r\n"
		     "Contact: <sip:%s@%s>\r\n"
		     "Expires: %d\r\n"
		     "User-Agent: ua_digest\r\n"
		     "%s%s%s"
		     "Content-Length: 0\r\n\r\n",
		     ua->server_text, ua->local_text, branch,
		     ua->user, ua->domain, ua->from_tag,
		     ua->user, ua->domain,
		     ua->call_id, cseq,
		     ua->user, ua->local_text, ua->expires,
		     authorization ? "Authorization: " : "", authorization ? authorization : "",
		     authorization ? "\r\n" : "");
	return n > 0 && (size_t)n < size ? 0 : -ENOSPC;
}

/*
 * Send `req` and wait for the final answer of CSeq `cseq` on our Call-ID,
 * retransmitting it every UA_RETRANSMIT_MS.  Returns the parsed answer
 * (msg_destroy() it) or NULL with *why set: UA_TIMEOUT or UA_ERROR.
 */
static msg_t *ua_transaction(struct ua *ua, const char *req, unsigned cseq, enum ua_exit *why)
{
	long deadline = ua_now_ms() + ua->timeout_ms, next_send = 0;
	char buf[UA_MSG_MAX + 1];

	*why = UA_ERROR;
	for (;;) {
		long now = ua_now_ms();
		struct pollfd pfd = { .fd = ua->fd, .events = POLLIN };
		msg_t *msg;
		sip_t *sip;
		ssize_t n;
		int wait;

		if (now >= deadline) {
			*why = UA_TIMEOUT;
			return NULL;
		}
		if (now >= next_send) {
			if (sendto(ua->fd, req, strlen(req), 0, (struct sockaddr *)&ua->server,
				   sizeof ua->server) < 0) {
				perror("ua_digest: sendto");
				return NULL;
			}
			next_send = now + UA_RETRANSMIT_MS;
		}
		wait = (int)((next_send < deadline ? next_send : deadline) - now);
		if (poll(&pfd, 1, wait) <= 0)
			continue;
		n = recv(ua->fd, buf, UA_MSG_MAX, 0);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		msg = msg_make(sip_default_mclass(), 0, buf, n);
		sip = msg ? sip_object(msg) : NULL;
		if (sip == NULL || sip->sip_status == NULL || sip->sip_call_id == NULL ||
		    sip->sip_cseq == NULL) {
			fprintf(stderr, "ua_digest: ignoring an unparsable message\n");
			msg_destroy(msg);
			continue;
		}
		/* Not ours, not this transaction, or provisional: keep waiting. */
		if (strcmp(sip->sip_call_id->i_id, ua->call_id) != 0 ||
		    sip->sip_cseq->cs_seq != cseq || sip->sip_status->st_status < 200) {
			msg_destroy(msg);
			continue;
		}
		return msg;
	}
}

/* The value of `name` ("nonce=") in a challenge's params, unquoted. */
static int ua_param(msg_param_t const *params, const char *name, char *out, size_t size)
{
	const char *v = msg_params_find(params, name);
	size_t len;

	if (v == NULL)
		return -ENOENT;
	len = strlen(v);
	if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
		v++;
		len -= 2;
	}
	if (len >= size || memchr(v, '\\', len) || memchr(v, '"', len))
		return -EINVAL;
	memcpy(out, v, len);
	out[len] = '\0';
	return 0;
}

/* Every Digest challenge of the 401, in order; returns how many. */
static int ua_read_challenges(sip_t const *sip, struct ua_challenge *ch, int max)
{
	int n = 0;

	for (sip_www_authenticate_t const *au = sip->sip_www_authenticate; au && n < max;
	     au = au->au_next) {
		struct ua_challenge *c = &ch[n];

		if (au->au_scheme == NULL || strcasecmp(au->au_scheme, "Digest") != 0)
			continue;
		memset(c, 0, sizeof *c);
		if (ua_param(au->au_params, "algorithm=", c->algorithm, sizeof c->algorithm) < 0)
			snprintf(c->algorithm, sizeof c->algorithm, "MD5");
		if (ua_param(au->au_params, "realm=", c->realm, sizeof c->realm) < 0 ||
		    ua_param(au->au_params, "nonce=", c->nonce, sizeof c->nonce) < 0)
			continue;
		ua_param(au->au_params, "qop=", c->qop, sizeof c->qop);
		printf("challenge %d: %s realm=%s nonce=%s qop=%s\n", n + 1, c->algorithm,
		       c->realm, c->nonce, c->qop);
		n++;
	}
	return n;
}

/*
 * The Authorization value answering challenge `c` for REGISTER, computed
 * with nettle, then verified with the daemon's own digest_verify().
 */
static int ua_authorization(const struct ua *ua, const struct ua_challenge *c, char *out,
			    size_t size)
{
	const char *alg_name = digest_alg_name(ua->alg);
	char ha1[DIGEST_HA1_SIZE], ha2[DIGEST_HA1_SIZE], response[DIGEST_HA1_SIZE];
	char uri[96], cnonce[17];
	const char *nc = "00000001";
	struct digest_credentials parsed;
	int n;

	if (strstr(c->qop, "auth") == NULL) {
		fprintf(stderr, "ua_digest: the challenge offers no qop=auth\n");
		return -ENOTSUP;
	}
	if (ua_random_hex(cnonce, 16) < 0 ||
	    digest_ha1(ua->alg, ua->user, c->realm, ua->password, ha1) < 0)
		return -EIO;
	snprintf(uri, sizeof uri, "sip:%s", ua->server_text);
	ua_hash_hex(ua->alg, (const char *const[]){ "REGISTER", uri }, 2, ha2);
	ua_hash_hex(ua->alg, (const char *const[]){ ha1, c->nonce, nc, cnonce, "auth", ha2 }, 6,
		    response);
	n = snprintf(out, size,
		     "Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", "
		     "response=\"%s\", algorithm=%s, qop=auth, nc=%s, cnonce=\"%s\"",
		     ua->user, c->realm, c->nonce, uri, response, alg_name, nc, cnonce);
	if (n <= 0 || (size_t)n >= size)
		return -ENOSPC;
	/* Both implementations must agree before the daemon is asked. */
	if (digest_parse(out, &parsed) < 0 || parsed.alg != ua->alg ||
	    digest_verify(&parsed, "REGISTER", ha1) != 0) {
		fprintf(stderr, "ua_digest: self-check failed: digest_verify() refuses %s\n", out);
		return -EPROTO;
	}
	return 0;
}

/* Print the final answer; its exit status. */
static enum ua_exit ua_report(sip_t const *sip)
{
	printf("final: %u %s\n", sip->sip_status->st_status,
	       sip->sip_status->st_phrase ? sip->sip_status->st_phrase : "");
	for (sip_contact_t const *m = sip->sip_contact; m; m = m->m_next) {
		char url[256];

		url_e(url, sizeof url, m->m_url);
		printf("contact: <%s>%s%s\n", url, m->m_expires ? ";expires=" : "",
		       m->m_expires ? m->m_expires : "");
	}
	return sip->sip_status->st_status == 200 ? UA_OK : UA_REFUSED;
}

/* ------------------------------------------------------------ main */

static int ua_register(struct ua *ua)
{
	struct ua_challenge ch[UA_MAX_CHALLENGES];
	const struct ua_challenge *pick = NULL;
	char req[UA_MSG_MAX], auth[1024];
	enum ua_exit why;
	msg_t *msg;
	sip_t *sip;
	int n;

	if (ua_build_register(ua, 1, NULL, req, sizeof req) < 0)
		return UA_ERROR;
	msg = ua_transaction(ua, req, 1, &why);
	if (msg == NULL) {
		fprintf(stderr, "ua_digest: no final answer to the first REGISTER\n");
		return why;
	}
	sip = sip_object(msg);
	if (sip->sip_status->st_status != 401) {
		why = ua_report(sip);
		msg_destroy(msg);
		return why == UA_OK ? UA_REFUSED : why;   /* a registrar must challenge */
	}
	n = ua_read_challenges(sip, ch, UA_MAX_CHALLENGES);
	for (int i = 0; i < n && pick == NULL; i++)
		if (strcasecmp(ch[i].algorithm, digest_alg_name(ua->alg)) == 0)
			pick = &ch[i];
	if (pick == NULL && ua->force && n > 0)
		pick = &ch[0];
	if (pick == NULL) {
		fprintf(stderr, "ua_digest: the 401 offers no %s challenge\n",
			digest_alg_name(ua->alg));
		msg_destroy(msg);
		return UA_REFUSED;
	}
	n = ua_authorization(ua, pick, auth, sizeof auth);
	msg_destroy(msg);
	if (n < 0)
		return UA_ERROR;
	printf("answering: %s\n", digest_alg_name(ua->alg));

	if (ua_build_register(ua, 2, auth, req, sizeof req) < 0)
		return UA_ERROR;
	msg = ua_transaction(ua, req, 2, &why);
	if (msg == NULL) {
		fprintf(stderr, "ua_digest: no final answer to the authenticated REGISTER\n");
		return why;
	}
	why = ua_report(sip_object(msg));
	msg_destroy(msg);
	return why;
}

static int ua_open(struct ua *ua)
{
	socklen_t len = sizeof ua->local;

	ua->fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (ua->fd < 0 || bind(ua->fd, (struct sockaddr *)&ua->local, sizeof ua->local) < 0 ||
	    getsockname(ua->fd, (struct sockaddr *)&ua->local, &len) < 0) {
		perror("ua_digest: socket");
		return -errno;
	}
	ua_addr_text(&ua->local, ua->local_text, sizeof ua->local_text);
	ua_addr_text(&ua->server, ua->server_text, sizeof ua->server_text);
	return 0;
}

static void ua_usage(void)
{
	fprintf(stderr, "usage: ua_digest -l LOCAL_IP[:PORT] -r SERVER_IP:PORT -u USER "
			"-p PASSWORD [-a sha256|md5] [-f] [-d DOMAIN] [-e EXPIRES] [-w TIMEOUT_MS]\n");
}

int main(int argc, char **argv)
{
	struct ua ua = { .fd = -1, .alg = DIGEST_SHA256, .expires = 3600, .timeout_ms = 4000 };
	const char *local = NULL, *server = NULL;
	char tag_hex[17], id_hex[25];
	int opt, rc;

	while ((opt = getopt(argc, argv, "l:r:u:p:a:fd:e:w:")) != -1) {
		switch (opt) {
		case 'l': local = optarg; break;
		case 'r': server = optarg; break;
		case 'u': ua.user = optarg; break;
		case 'p': ua.password = optarg; break;
		case 'd': ua.domain = optarg; break;
		case 'f': ua.force = 1; break;
		case 'e': ua.expires = atoi(optarg); break;
		case 'w': ua.timeout_ms = atoi(optarg); break;
		case 'a':
			if (strcmp(optarg, "sha256") == 0) {
				ua.alg = DIGEST_SHA256;
			} else if (strcmp(optarg, "md5") == 0) {
				ua.alg = DIGEST_MD5;
			} else {
				ua_usage();
				return UA_ERROR;
			}
			break;
		default:
			ua_usage();
			return UA_ERROR;
		}
	}
	if (!local || !server || !ua.user || !ua.password || ua.timeout_ms <= 0 ||
	    ua_parse_addr(local, &ua.local) < 0 || ua_parse_addr(server, &ua.server) < 0 ||
	    ua.server.sin_port == 0) {
		ua_usage();
		return UA_ERROR;
	}
	if (ua_open(&ua) < 0)
		return UA_ERROR;
	if (ua.domain == NULL) {
		static char host[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &ua.server.sin_addr, host, sizeof host);
		ua.domain = host;
	}
	if (ua_random_hex(tag_hex, 16) < 0 || ua_random_hex(id_hex, 24) < 0)
		return UA_ERROR;
	snprintf(ua.from_tag, sizeof ua.from_tag, "%s", tag_hex);
	snprintf(ua.call_id, sizeof ua.call_id, "%s@ua-digest", id_hex);
	printf("call-id: %s\nlocal: %s\n", ua.call_id, ua.local_text);

	rc = ua_register(&ua);
	close(ua.fd);
	return rc;
}
