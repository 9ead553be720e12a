# Step 3 of every upgrade (sql/upgrade/lib/code_only.awk): the code part of
# the current install script.  Reads sql/install/*.sql and prints them
# without the statements that shape tables (CREATE TABLE / SEQUENCE / INDEX /
# TYPE, ALTER TABLE / SEQUENCE: the hand-written upgrade file does those),
# with CREATE FUNCTION / VIEW turned into CREATE OR REPLACE (a function or
# view that a user's object depends on was kept by step 1).  Only top-level
# statements are looked at: lines inside a $$ ... $$ body are copied as they
# are.
function dollar_quotes(line,    n) {
    n = gsub(/\$\$/, "&", line)
    return n
}
{
    line = $0
    upper = toupper(line)
    if (!in_body && skipping == 0 &&
        upper ~ /^(CREATE (UNLOGGED |TEMP |TEMPORARY )?(TABLE|SEQUENCE)|CREATE (UNIQUE )?INDEX|CREATE TYPE|ALTER (TABLE|SEQUENCE|TYPE|INDEX)) /) {
        skipping = 1
        print "-- (table shape: see sql/upgrade/) " line
    } else if (skipping) {
        print "-- " line
    } else {
        if (!in_body) {
            sub(/^[Cc][Rr][Ee][Aa][Tt][Ee] [Ff][Uu][Nn][Cc][Tt][Ii][Oo][Nn] /, "CREATE OR REPLACE FUNCTION ", line)
            sub(/^[Cc][Rr][Ee][Aa][Tt][Ee] [Pp][Rr][Oo][Cc][Ee][Dd][Uu][Rr][Ee] /, "CREATE OR REPLACE PROCEDURE ", line)
            sub(/^[Cc][Rr][Ee][Aa][Tt][Ee] [Vv][Ii][Ee][Ww] /, "CREATE OR REPLACE VIEW ", line)
        }
        print line
    }
    if (skipping && line ~ /;[ \t]*(--.*)?$/) {
        skipping = 0
    } else if (!skipping && dollar_quotes(line) % 2 == 1) {
        in_body = !in_body
    }
}
