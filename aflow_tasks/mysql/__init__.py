"""MySQL and MariaDB tasks on aiomysql: run a statement, or fetch its rows, from the event loop.

Prefect 1's `MySQLExecute` and `MySQLFetch` (``prefect.tasks.mysql``), with their argument
names and defaults, on an async driver: many queries wait at once in one event loop. Each flow
run keeps one connection pool per configuration (`clients`, an `aflow.integration.ClientFactory`),
closed when the run ends; each task takes a connection from it for its statement.

- Values go in through ``data``, bound by the driver to ``%s`` / ``%(name)s`` placeholders (and
  escaped by it), never formatted into the SQL by aflow. Without ``data`` the query is sent as is
  (a ``%`` needs no doubling); with ``data`` a literal ``%`` is written ``%%``.
- ``commit=False`` (the default) rolls the statement's transaction back: no other connection, and
  no later task, sees the change. DDL (``CREATE TABLE``...) commits implicitly in MySQL.
- A server error fails the task with the server's code and message; a lost connection, a
  deadlock or a lock-wait timeout is transient (the task's retries apply).
- Cancelling the task (a flow cancelled, a task ``timeout``) while a statement runs kills the
  statement on the server: ``KILL QUERY <thread id>`` from a second connection, shielded and
  bounded (`KILL_LIMIT` seconds), and the interrupted connection is discarded.
- The password may be an `aflow.Secret` (or any lazy value), read when the task runs; it is
  registered for redaction and never appears in a state message, an error or a log record.

Needs the ``mysql`` extra: ``pip install aflow-engine[mysql]``.
"""

from __future__ import annotations

from typing import Any

from aflow import Task, defaults_from_attrs
from aflow.integration import cleanup, is_lazy, map_errors, resolve_lazy
from aflow.secrets import register

from ._pool import (
    CURSOR_TYPES,
    KILL_LIMIT,
    POOL_SIZE,
    Data,
    MySQLPool,
    MySQLSettings,
    SSLArg,
    _aiomysql,
    _classifier,
    _cursor_class,
    _kill_query,
    _no_such_thread,
    clients,
    open_pool,
)

__all__ = (
    "CURSOR_TYPES",
    "KILL_LIMIT",
    "POOL_SIZE",
    "MySQLExecute",
    "MySQLFetch",
    "MySQLPool",
    "MySQLSettings",
    "clients",
    "open_pool",
)


class _MySQLTask(Task):
    """What the two tasks share: settings from the call or the task, one statement on a pooled connection."""

    async def _value(self, name: str, value: Any) -> Any:
        """The call's value, else the task's (an explicit None counts as left out); lazy ones awaited."""
        if value is None:
            value = getattr(self, name, None)
        if value is not None and is_lazy(value):
            value = await resolve_lazy(value)
        return value

    async def _settings(self, values: dict[str, Any]) -> MySQLSettings:
        cls = type(self).__name__
        resolved = {name: await self._value(name, value) for name, value in values.items()}
        password = resolved["password"]
        if password is not None:
            if not isinstance(password, str):
                raise ValueError(f"{cls} password must be a string, not {type(password).__name__}")
            register(password)  # aflow's loggers and failed-state messages redact it
        for name in ("host", "user"):
            if resolved[name] is None or resolved[name] == "":
                raise ValueError(f"{cls} needs {name}: give {cls}({name}=...) or pass {name}= to the call")
        return MySQLSettings(
            host=resolved["host"],
            user=resolved["user"],
            password=password,
            db_name=resolved["db_name"],
            port=resolved["port"],
            charset=resolved["charset"],
            ssl=resolved["ssl"],
        )

    def _query(self, query: str | None, data: Data | None) -> str:
        cls = type(self).__name__
        if query is None or query == "":
            raise ValueError(f"{cls} needs query: give {cls}(query=...) or pass query= to the call")
        if isinstance(data, (str, bytes)):
            raise ValueError(
                f"{cls} data must be a sequence or a mapping, not the string {data!r}: "
                "wrap a single value in a tuple, e.g. data=(value,)"
            )
        return query

    async def _execute(
        self,
        settings: MySQLSettings,
        query: str,
        data: Data | None,
        commit: bool,
        cursor_class: Any = None,
        fetch: str | None = None,
        fetch_count: int = 10,
    ) -> Any:
        what = f"{type(self).__name__} on {settings.host}:{settings.port or 3306}"
        errors = _aiomysql().MySQLError
        async with clients.client(settings.key, settings) as pool:
            with map_errors(errors, _classifier(what, settings.password)):
                conn = await pool.acquire()
            reusable = False
            try:
                with map_errors(errors, _classifier(what, settings.password)):
                    try:
                        cursor = await (conn.cursor(cursor_class) if cursor_class else conn.cursor())
                        affected = await cursor.execute(query, data)
                        result: Any = affected
                        if fetch == "one":
                            result = await cursor.fetchone()
                        elif fetch == "many":
                            result = list(await cursor.fetchmany(fetch_count))
                        elif fetch == "all":
                            result = list(await cursor.fetchall())
                        unbuffered = isinstance(cursor, _aiomysql().cursors.SSCursor)
                        if unbuffered and fetch != "all" and not commit:
                            # the rest of a streamed result is not read (a million rows take
                            # seconds): the connection is closed instead, which rolls back
                            return result
                        await cursor.close()  # an unbuffered cursor reads what is left of the result
                        await (conn.commit() if commit else conn.rollback())
                    except BaseException as exc:
                        if not isinstance(exc, Exception):  # cancelled (or interrupted) mid-statement
                            thread_id = conn.thread_id()
                            await cleanup(
                                lambda: _kill_query(settings, thread_id),
                                f"kill query {thread_id} on {settings.host}",
                                self.logger,
                                expected=_no_such_thread,
                                limit=KILL_LIMIT,
                            )
                        raise
                reusable = True
            finally:
                pool.release(conn, reusable=reusable)  # not reusable: its state is unknown, closed
        return result


class MySQLExecute(_MySQLTask):
    """Execute a statement on a MySQL (or MariaDB) database and return the number of affected rows.

    Args:
        db_name: The database's name (default None: give it to the call, or none).
        user: The user name (default None: give it to the call). Required.
        password: The password: a string or a lazy `aflow.Secret` (default None: none).
        host: The server's host (default None: give it to the call). Required.
        port: The server's port. Defaults to 3306.
        query: The statement (default None: give it to the call). Required.
        commit: Commit the transaction; False rolls it back. Defaults to False.
        charset: The connection's character set. Defaults to ``"utf8mb4"``.
        ssl: TLS options: a pymysql-style dict (``ca``, ``cert``, ``key``, ``check_hostname``...)
            or an ``ssl.SSLContext`` (default None: no TLS).
        data: Values bound to the query's ``%s`` (a sequence) or ``%(name)s`` (a mapping)
            placeholders (default None: the query is sent as is).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        db_name: str | None = None,
        user: str | None = None,
        password: Any = None,
        host: str | None = None,
        port: int = 3306,
        query: str | None = None,
        commit: bool = False,
        charset: str = "utf8mb4",
        ssl: SSLArg | None = None,
        data: Data | None = None,
        **kwargs: Any,
    ) -> None:
        self.db_name = db_name
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.query = query
        self.commit = commit
        self.charset = charset
        self.ssl = ssl
        self.data = data
        super().__init__(**kwargs)

    @defaults_from_attrs("db_name", "user", "password", "host", "port", "query", "commit", "charset", "ssl", "data")
    async def run(
        self,
        db_name: str | None = None,
        user: str | None = None,
        password: Any = None,
        host: str | None = None,
        port: int | None = None,
        query: str | None = None,
        commit: bool | None = None,
        charset: str | None = None,
        ssl: SSLArg | None = None,
        data: Data | None = None,
    ) -> int:
        """Execute the statement, commit it or roll it back, and return the number of affected rows.

        Args:
            db_name: The database (default None: the task's).
            user: The user name (default None: the task's).
            password: The password, a string or a lazy secret (default None: the task's).
            host: The server's host (default None: the task's).
            port: The server's port (default None: the task's).
            query: The statement (default None: the task's).
            commit: Commit instead of rolling back (default None: the task's).
            charset: The character set (default None: the task's).
            ssl: TLS options (default None: the task's).
            data: Values for the placeholders (default None: the task's, or none).

        Returns:
            The number of rows the statement affected (for a ``SELECT``, the rows it returned).

        Raises:
            ValueError: If ``host``, ``user`` or ``query`` is missing, or ``data`` is a string.
            aflow.signals.FAIL: The server's error (code and message), or a connection failure.
        """
        data = await self._value("data", data)
        sql = self._query(await self._value("query", query), data)
        settings = await self._settings(
            {
                "db_name": db_name,
                "user": user,
                "password": password,
                "host": host,
                "port": port,
                "charset": charset,
                "ssl": ssl,
            }
        )
        do_commit = bool(await self._value("commit", commit))
        affected: int = await self._execute(settings, sql, data, do_commit)
        self.logger.debug("MySQLExecute affected %d rows", affected)
        return affected


class MySQLFetch(_MySQLTask):
    """Run a query on a MySQL (or MariaDB) database and return one, some or all of its rows.

    Rows are tuples, or dicts (column name to value) with a ``"dictcursor"`` or
    ``"ssdictcursor"``. The ``ss`` cursors are unbuffered: rows are read from the server as they
    are fetched, so ``fetch="one"``/``"many"`` on a huge result holds only those rows in memory.

    Args:
        db_name: The database's name (default None: give it to the call, or none).
        user: The user name (default None: give it to the call). Required.
        password: The password: a string or a lazy `aflow.Secret` (default None: none).
        host: The server's host (default None: give it to the call). Required.
        port: The server's port. Defaults to 3306.
        fetch: ``"one"`` (a row or None), ``"many"`` (a list of at most ``fetch_count`` rows) or
            ``"all"`` (a list of every row). Defaults to ``"one"``.
        fetch_count: How many rows ``fetch="many"`` returns at most. Defaults to 10.
        query: The query (default None: give it to the call). Required.
        commit: Commit the transaction; False rolls it back. Defaults to False.
        charset: The connection's character set. Defaults to ``"utf8mb4"``.
        cursor_type: ``"cursor"``, ``"dictcursor"``, ``"sscursor"`` or ``"ssdictcursor"``
            (case-insensitive), or an aiomysql cursor class. Defaults to ``"cursor"``.
        ssl: TLS options: a pymysql-style dict or an ``ssl.SSLContext`` (default None: no TLS).
        data: Values bound to the query's ``%s`` (a sequence) or ``%(name)s`` (a mapping)
            placeholders (default None: the query is sent as is).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        db_name: str | None = None,
        user: str | None = None,
        password: Any = None,
        host: str | None = None,
        port: int = 3306,
        fetch: str = "one",
        fetch_count: int = 10,
        query: str | None = None,
        commit: bool = False,
        charset: str = "utf8mb4",
        cursor_type: str | type = "cursor",
        ssl: SSLArg | None = None,
        data: Data | None = None,
        **kwargs: Any,
    ) -> None:
        self.db_name = db_name
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.fetch = fetch
        self.fetch_count = fetch_count
        self.query = query
        self.commit = commit
        self.charset = charset
        self.cursor_type = cursor_type
        self.ssl = ssl
        self.data = data
        super().__init__(**kwargs)

    @defaults_from_attrs(
        "db_name",
        "user",
        "password",
        "host",
        "port",
        "fetch",
        "fetch_count",
        "query",
        "commit",
        "charset",
        "cursor_type",
        "ssl",
        "data",
    )
    async def run(
        self,
        db_name: str | None = None,
        user: str | None = None,
        password: Any = None,
        host: str | None = None,
        port: int | None = None,
        fetch: str | None = None,
        fetch_count: int | None = None,
        query: str | None = None,
        commit: bool | None = None,
        charset: str | None = None,
        cursor_type: str | type | None = None,
        ssl: SSLArg | None = None,
        data: Data | None = None,
    ) -> Any:
        """Run the query, fetch its rows, commit or roll back, and return the rows.

        Args:
            db_name: The database (default None: the task's).
            user: The user name (default None: the task's).
            password: The password, a string or a lazy secret (default None: the task's).
            host: The server's host (default None: the task's).
            port: The server's port (default None: the task's).
            fetch: ``"one"``, ``"many"`` or ``"all"`` (default None: the task's).
            fetch_count: The most rows ``fetch="many"`` returns (default None: the task's).
            query: The query (default None: the task's).
            commit: Commit instead of rolling back (default None: the task's).
            charset: The character set (default None: the task's).
            cursor_type: A cursor name or class (default None: the task's).
            ssl: TLS options (default None: the task's).
            data: Values for the placeholders (default None: the task's, or none).

        Returns:
            ``fetch="one"``: a row (a tuple, or a dict with a dict cursor) or None;
            ``"many"``: a list of at most ``fetch_count`` rows; ``"all"``: a list of every row.

        Raises:
            ValueError: If ``host``, ``user`` or ``query`` is missing, ``fetch`` is not one of
                ``"one"``, ``"many"``, ``"all"``, or ``data`` is a string.
            TypeError: If ``cursor_type`` is neither one of the four names nor a class.
            aflow.signals.FAIL: The server's error (code and message), or a connection failure.
        """
        data = await self._value("data", data)
        sql = self._query(await self._value("query", query), data)
        how = await self._value("fetch", fetch)
        if how not in ("one", "many", "all"):
            raise ValueError("The 'fetch' parameter must be one of the following - ('one', 'many', 'all')")
        count = await self._value("fetch_count", fetch_count)
        if how == "many" and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
            raise ValueError(f"MySQLFetch fetch_count must be a non-negative int for fetch='many', got {count!r}")
        cursor_class = _cursor_class(await self._value("cursor_type", cursor_type) or "cursor")
        settings = await self._settings(
            {
                "db_name": db_name,
                "user": user,
                "password": password,
                "host": host,
                "port": port,
                "charset": charset,
                "ssl": ssl,
            }
        )
        do_commit = bool(await self._value("commit", commit))
        rows = await self._execute(settings, sql, data, do_commit, cursor_class, how, count or 0)
        self.logger.debug("MySQLFetch fetched %s", "a row" if how == "one" else f"{len(rows)} rows")
        return rows
