
-- Last step of every upgrade (sql/upgrade/lib/rebuild_configured.sql):
-- configure() made the reading objects over the stored membership
-- (segments.membership, segment_members()) for the key type of the source;
-- step 1 dropped them with the other code objects.  Make them again, over the
-- stored membership as it is (nothing is re-evaluated).
SELECT segments._build_readers(c.key_type)
  FROM segments.config c
 WHERE pg_catalog.to_regclass('segments.member') IS NOT NULL;
