#!/usr/bin/python3
"""A report sliced by segment, with psycopg 3.

Revenue and buyers of the last N days per segment: the application's own
orders joined to segments.membership (one row per segment and contact) and
segments.segments (names).  A contact in several segments counts in each.

    PGDATABASE=app PGUSER=app python3 examples/python/report.py 30

The role needs segments_read and SELECT on orders.
"""
import datetime
import sys

import psycopg

REPORT = """
SELECT s.name AS segment,
       count(DISTINCT o.contact_id) AS buyers,
       sum(o.amount) AS revenue
  FROM orders o
  JOIN segments.membership m ON m.contact_id = o.contact_id
  JOIN segments.segments s ON s.id = m.segment_id
 WHERE o.ordered_at >= now() - %s
 GROUP BY s.name
 ORDER BY revenue DESC, s.name
"""


def revenue_by_segment(conn, days):
    """(segment, buyers, revenue) rows for the orders of the last `days` days."""
    return conn.execute(REPORT, [datetime.timedelta(days=days)]).fetchall()


def main(argv):
    days = int(argv[1]) if len(argv) > 1 else 30
    with psycopg.connect("", autocommit=True) as conn:
        for segment, buyers, revenue in revenue_by_segment(conn, days):
            print(f"{segment}|{buyers}|{revenue}")


if __name__ == "__main__":
    main(sys.argv)
