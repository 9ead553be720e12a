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
 * A contact's percentage conditions are hashed together
 * (Md5First32Many): their salts differ, the key is the same, and four
 * one-block messages go through the 64 steps side by side in the lanes of
 * a vector.  The regression tests compare every bucket with SQL's md5().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "md5_bucket.h"

static inline uint32
rotate_left(uint32 x, int c)
{
	return (x << c) | (x >> (32 - c));
}

/*
 * One step of a round, with its constants: the shift and
 * K[i] = floor(|sin(i + 1)| * 2^32), written out so that the 64 steps
 * compile to constant rotations and additions (a loop over tables of
 * them took twice as long: md5 was 8% of a nothing-changed refresh()).
 */
#define MD5_STEP(f, a, b, c, d, x, k, s) \
	do { \
		(a) += f((b), (c), (d)) + (x) + (uint32) (k); \
		(a) = rotate_left((a), (s)) + (b); \
	} while (0)
#define MD5_F(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define MD5_G(x, y, z) ((y) ^ ((z) & ((x) ^ (y))))
#define MD5_H(x, y, z) ((x) ^ (y) ^ (z))
#define MD5_I(x, y, z) ((y) ^ ((x) | ~(z)))

/*
 * The 64 steps, in two lists: a digest's first word is final after step
 * 61, so the lanes (below) stop there.  STEP is MD5_STEP or its vector twin.
 */
#define MD5_STEPS_1_TO_61(STEP) \
	STEP(MD5_F, a, b, c, d, m[0], 0xd76aa478, 7); \
	STEP(MD5_F, d, a, b, c, m[1], 0xe8c7b756, 12); \
	STEP(MD5_F, c, d, a, b, m[2], 0x242070db, 17); \
	STEP(MD5_F, b, c, d, a, m[3], 0xc1bdceee, 22); \
	STEP(MD5_F, a, b, c, d, m[4], 0xf57c0faf, 7); \
	STEP(MD5_F, d, a, b, c, m[5], 0x4787c62a, 12); \
	STEP(MD5_F, c, d, a, b, m[6], 0xa8304613, 17); \
	STEP(MD5_F, b, c, d, a, m[7], 0xfd469501, 22); \
	STEP(MD5_F, a, b, c, d, m[8], 0x698098d8, 7); \
	STEP(MD5_F, d, a, b, c, m[9], 0x8b44f7af, 12); \
	STEP(MD5_F, c, d, a, b, m[10], 0xffff5bb1, 17); \
	STEP(MD5_F, b, c, d, a, m[11], 0x895cd7be, 22); \
	STEP(MD5_F, a, b, c, d, m[12], 0x6b901122, 7); \
	STEP(MD5_F, d, a, b, c, m[13], 0xfd987193, 12); \
	STEP(MD5_F, c, d, a, b, m[14], 0xa679438e, 17); \
	STEP(MD5_F, b, c, d, a, m[15], 0x49b40821, 22); \
	STEP(MD5_G, a, b, c, d, m[1], 0xf61e2562, 5); \
	STEP(MD5_G, d, a, b, c, m[6], 0xc040b340, 9); \
	STEP(MD5_G, c, d, a, b, m[11], 0x265e5a51, 14); \
	STEP(MD5_G, b, c, d, a, m[0], 0xe9b6c7aa, 20); \
	STEP(MD5_G, a, b, c, d, m[5], 0xd62f105d, 5); \
	STEP(MD5_G, d, a, b, c, m[10], 0x02441453, 9); \
	STEP(MD5_G, c, d, a, b, m[15], 0xd8a1e681, 14); \
	STEP(MD5_G, b, c, d, a, m[4], 0xe7d3fbc8, 20); \
	STEP(MD5_G, a, b, c, d, m[9], 0x21e1cde6, 5); \
	STEP(MD5_G, d, a, b, c, m[14], 0xc33707d6, 9); \
	STEP(MD5_G, c, d, a, b, m[3], 0xf4d50d87, 14); \
	STEP(MD5_G, b, c, d, a, m[8], 0x455a14ed, 20); \
	STEP(MD5_G, a, b, c, d, m[13], 0xa9e3e905, 5); \
	STEP(MD5_G, d, a, b, c, m[2], 0xfcefa3f8, 9); \
	STEP(MD5_G, c, d, a, b, m[7], 0x676f02d9, 14); \
	STEP(MD5_G, b, c, d, a, m[12], 0x8d2a4c8a, 20); \
	STEP(MD5_H, a, b, c, d, m[5], 0xfffa3942, 4); \
	STEP(MD5_H, d, a, b, c, m[8], 0x8771f681, 11); \
	STEP(MD5_H, c, d, a, b, m[11], 0x6d9d6122, 16); \
	STEP(MD5_H, b, c, d, a, m[14], 0xfde5380c, 23); \
	STEP(MD5_H, a, b, c, d, m[1], 0xa4beea44, 4); \
	STEP(MD5_H, d, a, b, c, m[4], 0x4bdecfa9, 11); \
	STEP(MD5_H, c, d, a, b, m[7], 0xf6bb4b60, 16); \
	STEP(MD5_H, b, c, d, a, m[10], 0xbebfbc70, 23); \
	STEP(MD5_H, a, b, c, d, m[13], 0x289b7ec6, 4); \
	STEP(MD5_H, d, a, b, c, m[0], 0xeaa127fa, 11); \
	STEP(MD5_H, c, d, a, b, m[3], 0xd4ef3085, 16); \
	STEP(MD5_H, b, c, d, a, m[6], 0x04881d05, 23); \
	STEP(MD5_H, a, b, c, d, m[9], 0xd9d4d039, 4); \
	STEP(MD5_H, d, a, b, c, m[12], 0xe6db99e5, 11); \
	STEP(MD5_H, c, d, a, b, m[15], 0x1fa27cf8, 16); \
	STEP(MD5_H, b, c, d, a, m[2], 0xc4ac5665, 23); \
	STEP(MD5_I, a, b, c, d, m[0], 0xf4292244, 6); \
	STEP(MD5_I, d, a, b, c, m[7], 0x432aff97, 10); \
	STEP(MD5_I, c, d, a, b, m[14], 0xab9423a7, 15); \
	STEP(MD5_I, b, c, d, a, m[5], 0xfc93a039, 21); \
	STEP(MD5_I, a, b, c, d, m[12], 0x655b59c3, 6); \
	STEP(MD5_I, d, a, b, c, m[3], 0x8f0ccc92, 10); \
	STEP(MD5_I, c, d, a, b, m[10], 0xffeff47d, 15); \
	STEP(MD5_I, b, c, d, a, m[1], 0x85845dd1, 21); \
	STEP(MD5_I, a, b, c, d, m[8], 0x6fa87e4f, 6); \
	STEP(MD5_I, d, a, b, c, m[15], 0xfe2ce6e0, 10); \
	STEP(MD5_I, c, d, a, b, m[6], 0xa3014314, 15); \
	STEP(MD5_I, b, c, d, a, m[13], 0x4e0811a1, 21); \
	STEP(MD5_I, a, b, c, d, m[4], 0xf7537e82, 6);
#define MD5_STEPS_62_TO_64(STEP) \
	STEP(MD5_I, d, a, b, c, m[11], 0xbd3af235, 10); \
	STEP(MD5_I, c, d, a, b, m[2], 0x2ad7d2bb, 15); \
	STEP(MD5_I, b, c, d, a, m[9], 0xeb86d391, 21);

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
	MD5_STEPS_1_TO_61(MD5_STEP);
	MD5_STEPS_62_TO_64(MD5_STEP);
	state[0] += a;
	state[1] += b;
	state[2] += c;
	state[3] += d;
}

/* The first four bytes of a digest whose state[0] is `first`, big-endian. */
static inline uint32
digest_first32(uint32 first)
{
	/* the digest's first four bytes are state[0], least significant first */
	return ((first & 0xff) << 24) | ((first & 0xff00) << 8) |
		((first >> 8) & 0xff00) | (first >> 24);
}

/*
 * The message a || sep || b, padded, into buf: one block (len 64) or two
 * (128), the message being at most len - 9 bytes.
 */
static void
padded_message(unsigned char *buf, int len, const char *a, int alen, char sep,
			   const char *b, int blen)
{
	uint64		total = (uint64) alen + 1 + blen;

	memcpy(buf, a, alen);
	buf[alen] = (unsigned char) sep;
	memcpy(buf + alen + 1, b, blen);
	buf[total] = 0x80;
	memset(buf + total + 1, 0, len - 8 - (total + 1));
	for (int i = 0; i < 8; i++)
		buf[len - 8 + i] = (unsigned char) ((total * 8) >> (8 * i));
}

#if defined(__GNUC__) && !defined(WORDS_BIGENDIAN)
#define MD5_IN_LANES
#endif

#ifdef MD5_IN_LANES
/*
 * Four one-block messages hashed at once, one per 32-bit lane of a vector
 * (GCC's and clang's vector extension: SSE2 on x86-64, NEON on ARM, plain
 * code elsewhere; little-endian machines, whose words load as MD5 reads
 * them).  One MD5 is a chain of 64 dependent steps, so a core
 * runs four chains side by side for about the time of one.  Only the
 * first word of the digest is wanted, and it is final after step 61.
 */
typedef uint32 md5_lanes __attribute__((vector_size(16)));
#define MD5_LANES 4
#ifdef __clang__
#define LANES_SHUFFLE(x, y, i, j, k, l) __builtin_shufflevector((x), (y), i, j, k, l)
#else
#define LANES_SHUFFLE(x, y, i, j, k, l) \
	__builtin_shuffle((x), (y), (md5_lanes) {i, j, k, l})
#endif

static inline md5_lanes
rotate_lanes(md5_lanes x, int c)
{
	return (x << c) | (x >> (32 - c));
}

#define MD5_STEP_LANES(f, a, b, c, d, x, k, s) \
	do { \
		(a) += f((b), (c), (d)) + (x) + (uint32) (k); \
		(a) = rotate_lanes((a), (s)) + (b); \
	} while (0)

static void
md5_first_word_lanes(const unsigned char blocks[MD5_LANES][64], uint32 out[MD5_LANES])
{
	md5_lanes	m[16];
	md5_lanes	a = {0x67452301, 0x67452301, 0x67452301, 0x67452301};
	md5_lanes	b = {0xefcdab89, 0xefcdab89, 0xefcdab89, 0xefcdab89};
	md5_lanes	c = {0x98badcfe, 0x98badcfe, 0x98badcfe, 0x98badcfe};
	md5_lanes	d = {0x10325476, 0x10325476, 0x10325476, 0x10325476};

	/*
	 * Lane l's block is 4 vectors of its words; a 4 x 4 transpose of each
	 * column of them gives word j of every lane (scalar stores read back as
	 * a vector stall the loads: it took a third of the time).
	 */
	for (int j = 0; j < 16; j += 4)
	{
		md5_lanes	r0,
					r1,
					r2,
					r3,
					t0,
					t1,
					t2,
					t3;

		memcpy(&r0, blocks[0] + j * 4, sizeof(r0));
		memcpy(&r1, blocks[1] + j * 4, sizeof(r1));
		memcpy(&r2, blocks[2] + j * 4, sizeof(r2));
		memcpy(&r3, blocks[3] + j * 4, sizeof(r3));
		t0 = LANES_SHUFFLE(r0, r1, 0, 4, 1, 5);
		t1 = LANES_SHUFFLE(r0, r1, 2, 6, 3, 7);
		t2 = LANES_SHUFFLE(r2, r3, 0, 4, 1, 5);
		t3 = LANES_SHUFFLE(r2, r3, 2, 6, 3, 7);
		m[j] = LANES_SHUFFLE(t0, t2, 0, 1, 4, 5);
		m[j + 1] = LANES_SHUFFLE(t0, t2, 2, 3, 6, 7);
		m[j + 2] = LANES_SHUFFLE(t1, t3, 0, 1, 4, 5);
		m[j + 3] = LANES_SHUFFLE(t1, t3, 2, 3, 6, 7);
	}
	MD5_STEPS_1_TO_61(MD5_STEP_LANES);
	/* the three steps left change d, c and b, not the first word */
	for (int l = 0; l < MD5_LANES; l++)
		out[l] = digest_first32(0x67452301 + a[l]);
}

/*
 * The first words of md5(salts[i] || sep || key) for the nlanes (2 to 4)
 * salts lane_of names, each message one block, into out[i].
 */
static void
hash_in_lanes(const char *const *salts, const int *salt_lens, char sep,
			  const char *key, int key_len, const int *lane_of, int nlanes, uint32 *out)
{
	unsigned char blocks[MD5_LANES][64];
	uint32		first[MD5_LANES];

	for (int l = 0; l < nlanes; l++)
		padded_message(blocks[l], 64, salts[lane_of[l]], salt_lens[lane_of[l]], sep,
					   key, key_len);
	/* unused lanes hash a copy of the first */
	for (int l = nlanes; l < MD5_LANES; l++)
		memcpy(blocks[l], blocks[0], 64);
	md5_first_word_lanes((const unsigned char (*)[64]) blocks, first);
	for (int l = 0; l < nlanes; l++)
		out[lane_of[l]] = first[l];
}
#endif

/*
 * The first 32 bits of md5(salts[i] || sep || key) for each of n salts,
 * into out[i]: the hashes of a contact's percentage conditions, computed
 * together.  Messages of one block go four at a time where the compiler
 * has vectors; the others one by one.
 */
void
Md5First32Many(const char *const *salts, const int *salt_lens, int n, char sep,
			   const char *key, int key_len, uint32 *out)
{
#ifdef MD5_IN_LANES
	int			lane_of[MD5_LANES];
	int			nlanes = 0;

	for (int i = 0; i < n; i++)
	{
		if ((uint64) salt_lens[i] + 1 + key_len > 64 - 9)
			out[i] = Md5First32(salts[i], salt_lens[i], sep, key, key_len);
		else
		{
			lane_of[nlanes++] = i;
			if (nlanes == MD5_LANES)
			{
				hash_in_lanes(salts, salt_lens, sep, key, key_len, lane_of, nlanes, out);
				nlanes = 0;
			}
		}
	}
	/* one message left: the scalar code is cheaper than four lanes */
	if (nlanes == 1)
		out[lane_of[0]] = Md5First32(salts[lane_of[0]], salt_lens[lane_of[0]], sep,
									 key, key_len);
	else if (nlanes > 1)
		hash_in_lanes(salts, salt_lens, sep, key, key_len, lane_of, nlanes, out);
#else
	for (int i = 0; i < n; i++)
		out[i] = Md5First32(salts[i], salt_lens[i], sep, key, key_len);
#endif
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

	if (total <= 2 * 64 - 9)
	{
		/* one or two blocks, the usual case: the message copied in whole */
		unsigned char buf[2 * 64];
		int			len = total + 9 <= 64 ? 64 : 2 * 64;

		padded_message(buf, len, a, alen, sep, b, blen);
		md5_block(state, buf);
		if (len > 64)
			md5_block(state, buf + 64);
		padded = true;
	}
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
	return digest_first32(first);
}
