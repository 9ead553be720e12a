/*-------------------------------------------------------------------------
 *
 * md5_bucket.c
 *		The MD5 digest (RFC 1321) of a short message, for percentage
 *		buckets.
 *
 * PostgreSQL's pg_md5_hash() goes through OpenSSL's EVP interface, which
 * allocates and locks on every call: with ten percentage segments it was a
 * quarter of a refresh.  Buckets hash a salt and a key of a few dozen
 * bytes, so a plain implementation on the stack is all that is needed.
 * The regression tests compare every bucket with SQL's md5().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "md5_bucket.h"

/* Per-round shift amounts. */
static const int md5_shift[64] = {
	7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
	5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
	4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
	6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21
};

/* K[i] = floor(|sin(i + 1)| * 2^32), computed once (exact in doubles). */
static uint32 md5_k[64];
static bool md5_k_ready = false;

static void
md5_init_constants(void)
{
	for (int i = 0; i < 64; i++)
		md5_k[i] = (uint32) floor(fabs(sin((double) (i + 1))) * 4294967296.0);
	md5_k_ready = true;
}

static inline uint32
rotate_left(uint32 x, int c)
{
	return (x << c) | (x >> (32 - c));
}

/* One step of round r: a = b + ((a + f(b,c,d) + m[g] + k[i]) <<< s). */
#define MD5_STEP(f, a, b, c, d, g, i) \
	do { \
		(a) += f((b), (c), (d)) + m[(g)] + md5_k[(i)]; \
		(a) = rotate_left((a), md5_shift[(i)]) + (b); \
	} while (0)
#define MD5_F(x, y, z) (((x) & (y)) | (~(x) & (z)))
#define MD5_G(x, y, z) (((x) & (z)) | ((y) & ~(z)))
#define MD5_H(x, y, z) ((x) ^ (y) ^ (z))
#define MD5_I(x, y, z) ((y) ^ ((x) | ~(z)))

/* Processes one 64-byte block into the state (RFC 1321, section 3.4). */
static void
md5_block(uint32 state[4], const unsigned char *block)
{
	uint32		m[16];
	uint32		a = state[0],
				b = state[1],
				c = state[2],
				d = state[3];

	for (int i = 0; i < 16; i++)
		m[i] = (uint32) block[i * 4] | ((uint32) block[i * 4 + 1] << 8) |
			((uint32) block[i * 4 + 2] << 16) | ((uint32) block[i * 4 + 3] << 24);
	for (int i = 0; i < 16; i += 4)
	{
		MD5_STEP(MD5_F, a, b, c, d, i, i);
		MD5_STEP(MD5_F, d, a, b, c, i + 1, i + 1);
		MD5_STEP(MD5_F, c, d, a, b, i + 2, i + 2);
		MD5_STEP(MD5_F, b, c, d, a, i + 3, i + 3);
	}
	for (int i = 16; i < 32; i += 4)
	{
		MD5_STEP(MD5_G, a, b, c, d, (5 * i + 1) % 16, i);
		MD5_STEP(MD5_G, d, a, b, c, (5 * i + 6) % 16, i + 1);
		MD5_STEP(MD5_G, c, d, a, b, (5 * i + 11) % 16, i + 2);
		MD5_STEP(MD5_G, b, c, d, a, (5 * i + 16) % 16, i + 3);
	}
	for (int i = 32; i < 48; i += 4)
	{
		MD5_STEP(MD5_H, a, b, c, d, (3 * i + 5) % 16, i);
		MD5_STEP(MD5_H, d, a, b, c, (3 * i + 8) % 16, i + 1);
		MD5_STEP(MD5_H, c, d, a, b, (3 * i + 11) % 16, i + 2);
		MD5_STEP(MD5_H, b, c, d, a, (3 * i + 14) % 16, i + 3);
	}
	for (int i = 48; i < 64; i += 4)
	{
		MD5_STEP(MD5_I, a, b, c, d, (7 * i) % 16, i);
		MD5_STEP(MD5_I, d, a, b, c, (7 * i + 7) % 16, i + 1);
		MD5_STEP(MD5_I, c, d, a, b, (7 * i + 14) % 16, i + 2);
		MD5_STEP(MD5_I, b, c, d, a, (7 * i + 21) % 16, i + 3);
	}
	state[0] += a;
	state[1] += b;
	state[2] += c;
	state[3] += d;
}

/*
 * The first 32 bits of md5(a || sep || b), read big-endian: the number
 * that ('x' || left(md5(...), 8))::bit(32)::bigint gives in SQL.
 */
uint32
Md5First32(const char *a, int alen, char sep, const char *b, int blen)
{
	uint32		state[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
	unsigned char block[64];
	uint64		total = (uint64) alen + 1 + blen;
	uint64		pos = 0;		/* bytes of the message consumed */
	int			fill = 0;
	bool		padded = false;
	uint32		first;

	if (!md5_k_ready)
		md5_init_constants();

	/* message bytes, then 0x80, zeros, and the bit length */
	while (!padded)
	{
		while (fill < 64 && pos < total)
		{
			if (pos < (uint64) alen)
				block[fill++] = (unsigned char) a[pos];
			else if (pos == (uint64) alen)
				block[fill++] = (unsigned char) sep;
			else
				block[fill++] = (unsigned char) b[pos - alen - 1];
			pos++;
		}
		if (fill == 64)
		{
			md5_block(state, block);
			fill = 0;
			continue;
		}
		if (pos == total)
		{
			block[fill++] = 0x80;
			pos++;				/* the 0x80 is out; never again */
		}
		if (fill > 56)
		{
			memset(block + fill, 0, 64 - fill);
			md5_block(state, block);
			fill = 0;
		}
		memset(block + fill, 0, 56 - fill);
		for (int i = 0; i < 8; i++)
			block[56 + i] = (unsigned char) ((total * 8) >> (8 * i));
		md5_block(state, block);
		padded = true;
	}
	first = state[0];
	/* the digest's first four bytes are state[0], least significant first */
	return ((first & 0xff) << 24) | ((first & 0xff00) << 8) |
		((first >> 8) & 0xff00) | (first >> 24);
}
