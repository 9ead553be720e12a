/*-------------------------------------------------------------------------
 *
 * member_codec.h
 *		The compact form of one contact's stored membership.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MEMBER_CODEC_H
#define MEMBER_CODEC_H

extern bytea *MemberEncode(const int32 *nums, const int32 *since, int n);
extern int	MemberDecode(const bytea *data, int32 **nums, int32 **since);

#endif							/* MEMBER_CODEC_H */
