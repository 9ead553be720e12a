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

#endif							/* MD5_BUCKET_H */
