"""The PostgreSQL store's schema: one versioned step per migration, and :func:`migrate`,
which applies the missing steps under an advisory lock."""

from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg

from crawler.items import ARTICLE_FIELDS
from crawler.storage import StoreError, rekeyed

logger = logging.getLogger(__name__)

#: ``pg_advisory_xact_lock`` key serialising schema migrations ("crawler" in ASCII)
MIGRATION_LOCK_KEY = 0x637261776C6572


def _rekey_to_identity(conn: psycopg.Connection) -> None:
    """Keys become identity URLs (:func:`crawler.storage.rekeyed`). Rows that collapse to one
    identity are merged: the latest fetched stays, the others (and their revisions) become
    revisions of it."""
    conn.execute(
        "ALTER TABLE article_revisions"
        " DROP CONSTRAINT article_revisions_canonical_url_fkey,"
        " ADD CONSTRAINT article_revisions_canonical_url_fkey FOREIGN KEY (canonical_url)"
        " REFERENCES articles (canonical_url) ON DELETE CASCADE ON UPDATE CASCADE"
    )
    apply_rekey(conn, rekeyed(conn.execute("SELECT canonical_url, fetched_at FROM articles")),
                _VERSION_3_FIELDS)


#: the article fields as of schema version 3 (the version written by that step)
_VERSION_3_FIELDS = ARTICLE_FIELDS[: ARTICLE_FIELDS.index("fetched_at") + 1]


def apply_rekey(conn: psycopg.Connection, plan: list[tuple[str, str, str]],
                fields: tuple[str, ...] = ARTICLE_FIELDS) -> None:
    """Carry out a :func:`crawler.storage.rekeyed` plan in the caller's transaction."""
    if not plan:
        return
    conn.execute("CREATE TEMP TABLE rekey (old text PRIMARY KEY, stays text NOT NULL,"
                 " new text NOT NULL) ON COMMIT DROP")
    with conn.cursor().copy("COPY rekey (old, stays, new) FROM STDIN") as copy:
        for row in plan:
            copy.write_row(row)
    conn.execute(f"""
        INSERT INTO article_revisions (canonical_url, {', '.join(fields[1:])})
        SELECT r.stays, {', '.join('a.' + f for f in fields[1:])}
        FROM articles a JOIN rekey r ON a.canonical_url = r.old WHERE r.old <> r.stays
    """)
    conn.execute("UPDATE article_revisions v SET canonical_url = r.stays FROM rekey r"
                 " WHERE v.canonical_url = r.old AND r.old <> r.stays")
    conn.execute("DELETE FROM articles a USING rekey r"
                 " WHERE a.canonical_url = r.old AND r.old <> r.stays")
    # ON UPDATE CASCADE takes the revisions along
    conn.execute("UPDATE articles a SET canonical_url = r.new FROM rekey r"
                 " WHERE a.canonical_url = r.old AND r.old = r.stays AND r.old <> r.new")


#: the schema, one step per version, applied in order, each in its own transaction: SQL, or a
#: function of the connection. Append new steps; never edit one that has been released.
MIGRATIONS: list[tuple[str, str | Callable[[psycopg.Connection], None]]] = [
    (
        "articles table",
        """
        CREATE TABLE articles (
            canonical_url text PRIMARY KEY,
            url text NOT NULL,
            mirror text NOT NULL,
            outlet text NOT NULL,
            section text,
            title text,
            author text,
            published timestamptz,
            language text,
            text text,
            content_hash text,
            fetched_at timestamptz NOT NULL
        );
        -- export order, overall and per outlet (also serves count(outlet))
        CREATE INDEX articles_fetched_at ON articles (fetched_at);
        CREATE INDEX articles_outlet_fetched_at ON articles (outlet, fetched_at);
        """,
    ),
    (
        "article revisions; indexes for analysts",
        """
        CREATE TABLE article_revisions (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            canonical_url text NOT NULL
                REFERENCES articles (canonical_url) ON DELETE CASCADE,
            url text NOT NULL,
            mirror text NOT NULL,
            outlet text NOT NULL,
            section text,
            title text,
            author text,
            published timestamptz,
            language text,
            text text,
            content_hash text,
            fetched_at timestamptz NOT NULL,
            replaced_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX article_revisions_canonical_url
            ON article_revisions (canonical_url, fetched_at);

        -- A trigger rather than a CTE in write(): it sees the row version it replaces even
        -- when a concurrent writer inserted or changed that row after our snapshot.
        CREATE FUNCTION articles_keep_revision() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO article_revisions (
                canonical_url, url, mirror, outlet, section, title, author, published,
                language, text, content_hash, fetched_at)
            VALUES (
                OLD.canonical_url, OLD.url, OLD.mirror, OLD.outlet, OLD.section, OLD.title,
                OLD.author, OLD.published, OLD.language, OLD.text, OLD.content_hash,
                OLD.fetched_at);
            RETURN NULL;
        END
        $$;
        CREATE TRIGGER articles_keep_revision
            AFTER UPDATE ON articles
            FOR EACH ROW
            WHEN (OLD.content_hash IS DISTINCT FROM NEW.content_hash)
            EXECUTE FUNCTION articles_keep_revision();

        -- what analysts ask: an outlet's articles by date or section, copies by hash
        CREATE INDEX articles_published ON articles (published);
        CREATE INDEX articles_outlet_published ON articles (outlet, published);
        CREATE INDEX articles_outlet_section_published ON articles (outlet, section, published);
        CREATE INDEX articles_content_hash ON articles (content_hash);
        """,
    ),
    ("canonical URLs become identity URLs; duplicates merged", _rekey_to_identity),
    (
        "revisions counted; first and last seen; removals; validators; WARC records",
        """
        ALTER TABLE articles
            ADD COLUMN warc_file text, ADD COLUMN warc_record_id text,
            ADD COLUMN etag text, ADD COLUMN last_modified text,
            ADD COLUMN revision integer NOT NULL DEFAULT 1, ADD COLUMN revision_hash text,
            ADD COLUMN first_seen timestamptz, ADD COLUMN last_seen timestamptz,
            ADD COLUMN checked_at timestamptz, ADD COLUMN removed_at timestamptz,
            ADD COLUMN removal_checks integer NOT NULL DEFAULT 0;
        ALTER TABLE article_revisions
            ADD COLUMN revision integer, ADD COLUMN warc_file text,
            ADD COLUMN warc_record_id text;
        UPDATE article_revisions v SET revision = n.revision FROM (
            SELECT id, row_number() OVER (PARTITION BY canonical_url ORDER BY fetched_at, id)
                AS revision FROM article_revisions) n
        WHERE v.id = n.id;
        UPDATE articles a SET first_seen = coalesce(
                (SELECT min(fetched_at) FROM article_revisions v
                 WHERE v.canonical_url = a.canonical_url), a.fetched_at),
            last_seen = a.fetched_at, checked_at = a.fetched_at,
            revision = 1 + (SELECT count(*) FROM article_revisions v
                            WHERE v.canonical_url = a.canonical_url);
        -- the articles due for a revisit: the recent ones, and the removed ones (a few)
        CREATE INDEX articles_outlet_born ON articles (outlet, (coalesce(published, first_seen)));
        CREATE INDEX articles_outlet_removed ON articles (outlet, checked_at)
            WHERE removed_at IS NOT NULL;
        CREATE INDEX articles_removed_at ON articles (removed_at) WHERE removed_at IS NOT NULL;

        CREATE OR REPLACE FUNCTION articles_keep_revision() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO article_revisions (
                canonical_url, revision, url, mirror, outlet, section, title, author,
                published, language, text, content_hash, fetched_at, warc_file,
                warc_record_id)
            VALUES (
                OLD.canonical_url, OLD.revision, OLD.url, OLD.mirror, OLD.outlet,
                OLD.section, OLD.title, OLD.author, OLD.published, OLD.language, OLD.text,
                OLD.content_hash, OLD.fetched_at, OLD.warc_file, OLD.warc_record_id);
            RETURN NULL;
        END
        $$;
        DROP TRIGGER articles_keep_revision ON articles;
        CREATE TRIGGER articles_keep_revision
            AFTER UPDATE ON articles
            FOR EACH ROW
            WHEN (OLD.revision IS DISTINCT FROM NEW.revision)
            EXECUTE FUNCTION articles_keep_revision();
        """,
    ),
]

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: psycopg.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the schema up to ``target``; returns the version it is at.

    Each step runs in its own transaction holding an advisory lock, and re-reads the version
    under that lock, so processes migrating at once apply every step exactly once.
    """
    while True:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK_KEY])
            if conn.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
                conn.execute(
                    "CREATE TABLE schema_version ("
                    " version integer PRIMARY KEY,"
                    " description text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
            current = conn.execute(
                "SELECT coalesce(max(version), 0) FROM schema_version"
            ).fetchone()[0]
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"the database schema is at version {current}, newer than this crawler"
                    f" knows ({SCHEMA_VERSION}): upgrade the crawler"
                )
            if current >= target:
                return current
            description, step = MIGRATIONS[current]
            if callable(step):
                step(conn)
            else:
                conn.execute(step)
            conn.execute(
                "INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                [current + 1, description],
            )
            logger.info("PostgreSQL schema migrated to version %d: %s", current + 1, description)
