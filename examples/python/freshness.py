#!/usr/bin/python3
"""Waiting for freshness after a write, with psycopg 3.

The application changes a contact and commits; the background worker applies
the change to membership moments later.  segments.wait() returns true once
every change committed before the call is reflected, so a read right after
it sees the contact's new segments.  Call it after the commit: the changes of
the calling transaction are not committed yet.

    PGDATABASE=app PGUSER=app python3 examples/python/freshness.py 70000 vip

The role needs segments_read and UPDATE on contacts.
"""
import datetime
import sys

import psycopg


def set_plan_and_wait(conn, contact_id, plan, timeout=datetime.timedelta(seconds=5)):
    """Changes the contact's plan, commits, and waits until membership shows it.

    Returns whether membership caught up within the timeout."""
    with conn.transaction():
        conn.execute("UPDATE contacts SET plan = %s WHERE id = %s", [plan, contact_id])
    # committed: now wait for the worker
    return conn.execute("SELECT segments.wait(%s)", [timeout]).fetchone()[0]


def segments_of(conn, contact_id):
    """Names of the segments the contact is in."""
    rows = conn.execute("SELECT name FROM segments.contact_segments(%s) ORDER BY name",
                        [contact_id]).fetchall()
    return [name for (name,) in rows]


def main(argv):
    contact = int(argv[1]) if len(argv) > 1 else 70000
    plan = argv[2] if len(argv) > 2 else "vip"
    with psycopg.connect("") as conn:
        print(f"before: {', '.join(segments_of(conn, contact))}")
        conn.commit()
        fresh = set_plan_and_wait(conn, contact, plan)
        print(f"fresh: {fresh}")
        print(f"after: {', '.join(segments_of(conn, contact))}")
        conn.commit()


if __name__ == "__main__":
    main(sys.argv)
