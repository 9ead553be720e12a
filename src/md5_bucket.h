/*-------------------------------------------------------------------------
 *
 * md5_bucket.h
 *		The first 32 bits of an MD5 digest, for percentage buckets.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MD5_BUCKET_H
#define MD5_BUCKET_H

extern uint32 Md5First32(const char *a, int alen, char sep, const char *b, int blen);
extern void Md5First32Many(const char *const *salts, const int *salt_lens, int n, char sep,
						   const char *key, int key_len, uint32 *out);

#endif							/* MD5_BUCKET_H */
