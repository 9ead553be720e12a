/*-------------------------------------------------------------------------
 *
 * history.h
 *		Membership history and change feed (history.c): every entry and
 *		exit written to segments.member is recorded in segments.change_log
 *		by a statement trigger, in the writer's transaction.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_HISTORY_H
#define SEGMENTS_HISTORY_H

/*
 * Why membership changed, stored as a "char" in segments.change_log and
 * shown as text by segments.membership_changes.
 */
#define HISTORY_CAUSE_NONE				'\0'	/* unset: recorded as 'other' */
#define HISTORY_CAUSE_CHANGE			'c'	/* the worker applied contact changes */
#define HISTORY_CAUSE_TIME				't'	/* the passage of time (window, sweep) */
#define HISTORY_CAUSE_EVALUATION		'e'	/* a created/changed segment evaluated */
#define HISTORY_CAUSE_SCHEDULE			's'	/* a scheduled re-evaluation */
#define HISTORY_CAUSE_REFRESH			'r'	/* segments.refresh() */
#define HISTORY_CAUSE_REFRESH_CONTACTS	'k'	/* segments.refresh_contacts() */
#define HISTORY_CAUSE_FAILED			'f'	/* a failed segment fails closed */
#define HISTORY_CAUSE_DROPPED			'd'	/* drop_segment() */
#define HISTORY_CAUSE_CONFIGURE			'g'	/* configure() */

extern bool segments_history;
extern int	segments_history_retention;

extern void HistoryInit(void);
extern char HistorySetCause(char cause);
extern void HistoryDefaultCause(char cause);
extern int64 HistoryTrim(int limit);

#endif							/* SEGMENTS_HISTORY_H */
