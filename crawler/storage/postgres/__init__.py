"""The PostgreSQL article store: ``postgresql://user:pass@host:port/db``.

Many workers write into one database, so everything here is built for concurrency:

- the schema is created and migrated on open, one versioned step per transaction, under an
  advisory lock, so workers starting together neither race nor need a manual step;
- ``write()`` upserts a whole batch in one statement (one round trip), keys sorted so two
  writers with overlapping batches lock rows in the same order;
- the previous version of a changed article (a new ``revision``) is kept by a trigger, which
  sees exactly the row it replaces even when another writer got there first;
- nothing lasts beyond a transaction: no session settings, transaction-scoped locks, and no
  prepared statements (psycopg prepares a statement once it ran 5 times on a connection;
  here it never does), so a transaction-pooling PgBouncer may sit in front, of any version.

A server that is away (unreachable, restarting, connection dropped) raises
:class:`StoreUnavailable`; the caller keeps its batch and retries, and the pool reconnects by
itself once the server is back.

Its parts:

- :mod:`~crawler.storage.postgres.schema`: the versioned schema and :func:`migrate`;
- :mod:`~crawler.storage.postgres.rows`: a batch as the arrays of one upsert, rows as records;
- :mod:`~crawler.storage.postgres.connections`: the pool, retries, errors as StoreErrors;
- :mod:`~crawler.storage.postgres.store`: :class:`PostgresStore`, its reads and writes.
"""

from crawler.storage.postgres.schema import SCHEMA_VERSION, migrate
from crawler.storage.postgres.store import PostgresStore

__all__ = ["SCHEMA_VERSION", "PostgresStore", "migrate"]
