#!/usr/bin/python3
"""Gating with segments from an application, with psycopg 3.

Which actions (or AI instructions) may a contact use?  Each action has a
`restricted_to` list of segment ids; segments.filter_restricted() keeps the
actions whose list is empty or names a segment the contact is in.  Every
value is a bound parameter, typed as psycopg types it: a Python int is sent
as smallint, integer or bigint depending on its size, a uuid.UUID as uuid,
a list of them as uuid[].

    PGDATABASE=app PGUSER=app python3 examples/python/gating.py 42

The connection comes from the usual libpq environment (PGHOST, PGPORT,
PGUSER, PGDATABASE); the role needs segments_read and SELECT on actions.
"""
import sys
import uuid

import psycopg


def actions_for(conn, contact_id):
    """Names of the actions this contact may use, in id order."""
    rows = conn.execute(
        "SELECT name FROM actions"
        " WHERE segments.filter_restricted(%s, restricted_to)"
        " ORDER BY id",
        [contact_id]).fetchall()
    return [name for (name,) in rows]


def segment_id(conn, name):
    """The id (a uuid.UUID) of a segment this session may see, by name."""
    row = conn.execute("SELECT id FROM segments.segments WHERE name = %s", [name]).fetchone()
    if row is None:
        raise LookupError(f"no segment named {name!r}")
    return row[0]


def is_member(conn, contact_id, segment):
    """Is the contact in the segment?  `segment` is a uuid.UUID or a name."""
    return conn.execute("SELECT segments.segment_is_member(%s, %s)",
                        [contact_id, segment]).fetchone()[0]


def may_use(conn, contact_id, restricted_to):
    """Gating for one item not stored in a table: a list of uuid.UUID (or None)."""
    return conn.execute("SELECT segments.filter_restricted(%s, %s)",
                        [contact_id, restricted_to]).fetchone()[0]


def main(argv):
    contacts = [int(a) for a in argv[1:]] or [42]
    with psycopg.connect("", autocommit=True) as conn:
        vip = segment_id(conn, "VIP customers")
        assert isinstance(vip, uuid.UUID)
        for contact in contacts:
            print(f"{contact}: {', '.join(actions_for(conn, contact))}")
            print(f"{contact} in VIP customers: by id {is_member(conn, contact, vip)},"
                  f" by name {is_member(conn, contact, 'VIP customers')}")
            print(f"{contact} may use a VIP-only item: {may_use(conn, contact, [vip])},"
                  f" an unrestricted one: {may_use(conn, contact, None)}")


if __name__ == "__main__":
    main(sys.argv)
