-- The Obsqra server's two database roles, for compose.yaml's postgres
-- service, which mounts this file into /docker-entrypoint-initdb.d: the
-- image's entrypoint runs it once, on an empty data directory, with psql
-- as the superuser in POSTGRES_DB. Anywhere else: psql -v ON_ERROR_STOP=1
-- -d DATABASE -f deploy/postgres-roles.sql, as a superuser, with the two
-- passwords in the environment (psql 15 or later, for \getenv).
--
--   obsqra_owner   owns the database and so the schema public (PostgreSQL
--                  15: pg_database_owner's) and every table: the server
--                  migrates as it (MIGRATION_DATABASE_URL) and, at each
--                  start, grants obsqra_server its privileges table by
--                  table (store.GrantApplication).
--   obsqra_server  what the server serves as (DATABASE_URL): it may
--                  connect, use the schema, and read and write rows
--                  (SELECT, INSERT, UPDATE, DELETE, sequences), nothing
--                  more: no DDL, no TRUNCATE, no TEMP. LISTEN, NOTIFY
--                  (pg_notify), the advisory locks, set_config of its own
--                  session and pg_locks need no grant.
--
-- The default privileges give obsqra_server its rows on the tables
-- obsqra_owner creates later, before the server's grants at start narrow
-- them on history (SELECT and INSERT only; the append-only triggers refuse
-- the rest meanwhile).
--
-- Passwords: OBSQRA_OWNER_PASSWORD and OBSQRA_SERVER_PASSWORD in the
-- environment (compose.yaml passes them). They go into URLs as they are:
-- keep them URL-safe (openssl rand -hex 24).

\set ON_ERROR_STOP on
\getenv owner_password OBSQRA_OWNER_PASSWORD
\getenv server_password OBSQRA_SERVER_PASSWORD
\if :{?owner_password}
\else
\set owner_password ''
\endif
\if :{?server_password}
\else
\set server_password ''
\endif
SELECT :'owner_password' <> '' AND :'server_password' <> '' AS passwords_set,
    current_database() AS database \gset
\if :passwords_set
\else
DO $$ BEGIN RAISE EXCEPTION 'set OBSQRA_OWNER_PASSWORD and OBSQRA_SERVER_PASSWORD in the environment of psql'; END $$;
\endif

BEGIN;

CREATE ROLE obsqra_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE obsqra_server LOGIN PASSWORD :'server_password';

ALTER DATABASE :"database" OWNER TO obsqra_owner;
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"database" TO obsqra_server;

-- PostgreSQL 15 gives PUBLIC no CREATE on public any more; its USAGE goes
-- too, to the server's role alone.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO obsqra_server;

ALTER DEFAULT PRIVILEGES FOR ROLE obsqra_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO obsqra_server;
ALTER DEFAULT PRIVILEGES FOR ROLE obsqra_owner IN SCHEMA public
    GRANT USAGE ON SEQUENCES TO obsqra_server;

COMMIT;
