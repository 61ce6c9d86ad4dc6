"""Snowflake tasks on snowflake-connector-python: run a query, or the statements of a SQL file.

The connector is blocking, so every call to it (connect, execute, fetch, commit, close) runs in
a worker thread (``anyio.to_thread``), never on the event loop: many Snowflake tasks of one
flow run wait at once. Each task run opens its own connection with
``snowflake.connector.connect(**kw)`` (looked up when the task runs, so ``fakesnow.patch()`` and
other patches of it apply), passing only the arguments that are set: an argument left at None is
never sent. The connection is used as Prefect 1 used it: on success it commits when the session
does not autocommit, on an error it rolls back, and it is closed either way.

Errors of the connector (``snowflake.connector.errors.Error``: a SQL error, a failed login, a
lost connection) fail the task with the server's message; a lost connection or another
``OperationalError`` is retried while the task has retries left (`aflow.integration.retry_or_fail`).
The password, the private key and the token are resolved when the task runs (an
`aflow.Secret` works) and registered for redaction: they never appear in a state message, an
exception's text or an aflow log record.

When the task is cancelled (a flow run cancelled, a task timeout) while a query runs, the
running cursors are cancelled where the connector offers it (a cursor's ``cancel()``; on a real
Snowflake session ``SYSTEM$CANCEL_ALL_QUERIES`` for the session), the connection is closed,
shielded from the cancellation and bounded in time, and the cancellation is re-raised once the
worker thread has let go of the connection.

Needs the ``snowflake`` extra: ``pip install aflow-engine[snowflake]``.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TypeAlias, TypeVar

import anyio
import anyio.to_thread

from aflow import Task, defaults_from_attrs
from aflow.integration import Failure, cleanup, is_lazy, map_errors, resolve_lazy
from aflow.secrets import redact, register

__all__ = ("SnowflakeQueriesFromFile", "SnowflakeQuery")

Data: TypeAlias = "Sequence[Any] | Mapping[str, Any]"
R = TypeVar("R")

_log = logging.getLogger("aflow_tasks.snowflake")

CLEANUP_SECONDS = 30.0
"""How long cancelling and closing a connection may take after a cancellation."""

_AUTH_ARGS = ("password", "private_key", "authenticator", "token")
_SECRET_ARGS = ("password", "private_key", "token")


def _connector() -> ModuleType:
    try:
        with warnings.catch_warnings():
            # the connector's vendored requests warns at import about a chardet newer than it knows
            # (6+, which other packages bring along); it reads no chardet with charset_normalizer there
            warnings.filterwarnings("ignore", "urllib3 .* doesn't match a supported version")
            import snowflake.connector
    except ImportError as exc:
        raise ImportError(
            "snowflake tasks need snowflake-connector-python: pip install aflow-engine[snowflake]"
        ) from exc
    return snowflake.connector


def _failure(exc: Exception) -> Failure:
    """The task failure a connector error means: the server's message; OperationalError is transient."""
    errors = _connector().errors
    transient = isinstance(exc, errors.OperationalError)
    # the server may repeat what it was sent (a name, a literal): registered secrets are masked
    return Failure(redact(f"Snowflake error: {exc}"), transient=transient)


def _register_secret(value: Any) -> None:
    if isinstance(value, (bytes, bytearray)):
        try:
            register(bytes(value).decode())
        except UnicodeDecodeError:
            pass
    else:
        register(value)


async def _connect_params(cls: str, given: dict[str, Any]) -> dict[str, Any]:
    """Resolve lazy values, check the required ones, and keep only the arguments that are set."""
    values: dict[str, Any] = {}
    for name, value in given.items():
        if is_lazy(value):
            value = await resolve_lazy(value)
        if name in _SECRET_ARGS and value is not None:
            _register_secret(value)
        values[name] = value
    if not values.get("account"):
        raise ValueError(f"{cls} needs account: an account must be provided (give {cls}(account=...) or pass account=)")
    if not values.get("user"):
        raise ValueError(f"{cls} needs user: a user must be provided (give {cls}(user=...) or pass user=)")
    if all(values.get(name) is None for name in _AUTH_ARGS):
        raise ValueError(
            f"{cls} needs an authentication keyword: one of password, private_key, authenticator or token "
            "must be provided"
        )
    values["application"] = f"aflow_{cls}"  # names the client to Snowflake, as Prefect 1 did
    return {name: value for name, value in values.items() if value is not None}


class _Session:
    """One connection's life in a worker thread, which the event loop may interrupt.

    The worker connects, registers the connection and its cursors here, runs the job inside
    ``with conn:`` (commit or rollback, then close) and sets ``done``. On a cancellation the loop
    calls `interrupt` (in another thread): it marks the session abandoned, cancels the cursors
    and the session's queries where it can, and closes the connection.
    """

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.conn: Any = None
        self.cursors: list[Any] = []
        self.abandoned = False

    def cursor(self, conn: Any, cursor_class: type[Any] | None) -> Any:
        """Open a cursor on ``conn``, tracked for `interrupt`."""
        cursor = conn.cursor() if cursor_class is None else conn.cursor(cursor_class)
        with self.lock:
            self.cursors.append(cursor)
            if self.abandoned:
                raise RuntimeError("the task was cancelled")
        return cursor

    def work(self, job: Callable[[_Session, Any], R]) -> R:
        """Connect and run ``job(session, conn)`` (in the worker thread)."""
        try:
            # looked up now, not at import: fakesnow.patch() and other patches replace it
            conn = _connector().connect(**self.params)
            with self.lock:
                self.conn = conn
                abandoned = self.abandoned
            if abandoned:
                conn.close()
                raise RuntimeError("the task was cancelled")
            try:
                with conn:
                    return job(self, conn)
            except BaseException:
                if self.abandoned:  # nobody listens any more; the connection is closed below
                    _close_quietly(conn)
                raise
        finally:
            self.done.set()

    def interrupt(self) -> None:
        """Cancel what runs and close the connection (from a thread other than the worker)."""
        with self.lock:
            self.abandoned = True
            conn, cursors = self.conn, list(self.cursors)
        for cursor in cursors:
            cancel = getattr(cursor, "cancel", None)
            if callable(cancel):
                try:
                    cancel()
                except Exception as exc:
                    _log.debug("could not cancel a Snowflake cursor: %s", exc)
        if conn is None:
            return
        session_id = getattr(conn, "session_id", None)
        if session_id and isinstance(conn, _connector().SnowflakeConnection):
            try:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT SYSTEM$CANCEL_ALL_QUERIES(%s)", (session_id,))
            except Exception as exc:
                _log.debug("could not cancel the queries of Snowflake session %s: %s", session_id, exc)
        conn.close()


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception as exc:
        _log.debug("closing a Snowflake connection: %s", exc)


async def _run(params: dict[str, Any], job: Callable[[_Session, Any], R]) -> R:
    """Run ``job`` on a new connection in a worker thread; on cancellation interrupt and close it."""
    session = _Session(params)
    try:
        # not chained: the connector's exception holds the server's unmasked text
        with map_errors(_connector().errors.Error, _failure, chain=False):
            return await anyio.to_thread.run_sync(session.work, job, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():

        async def stop() -> None:
            await anyio.to_thread.run_sync(session.interrupt, abandon_on_cancel=True)
            # the worker lets go of the connection once its call returns or fails
            await anyio.to_thread.run_sync(session.done.wait, CLEANUP_SECONDS, abandon_on_cancel=True)

        await cleanup(stop, "cancel the Snowflake query and close its connection", _log, limit=CLEANUP_SECONDS)
        raise


def _need(value: Any, arg: str, cls: str, what: str) -> Any:
    if value is None or value == "":
        raise ValueError(f"{cls} needs {arg}: {what} must be provided (give {cls}({arg}=...) or pass {arg}=)")
    return value


class _SnowflakeTask(Task):
    """The connection arguments both Snowflake tasks share."""

    def __init__(
        self,
        account: str | None = None,
        user: str | None = None,
        password: Any = None,
        private_key: Any = None,
        database: str | None = None,
        schema: str | None = None,
        role: str | None = None,
        warehouse: str | None = None,
        autocommit: bool | None = None,
        cursor_type: type[Any] | None = None,
        authenticator: str | None = None,
        token: Any = None,
        **kwargs: Any,
    ) -> None:
        self.account = account
        self.user = user
        self.password = password
        self.private_key = private_key
        self.database = database
        self.schema = schema
        self.role = role
        self.warehouse = warehouse
        self.autocommit = autocommit
        self.cursor_type = cursor_type
        self.authenticator = authenticator
        self.token = token
        super().__init__(**kwargs)


class SnowflakeQuery(_SnowflakeTask):
    """Run one query on Snowflake and return its rows (``cursor.fetchall()``).

    Values go in through ``data``, bound by the connector to ``%s`` (or ``%(name)s``)
    placeholders: they are never formatted into the SQL text.

    Args:
        account: The Snowflake account identifier (required, here or in the call).
        user: The user name to authenticate with (required, here or in the call).
        password: The password (a string or an `aflow.Secret`); ``password``, ``private_key``,
            ``authenticator`` or ``token`` must be given.
        private_key: A private key to authenticate with (key-pair authentication).
        database: The session's default database.
        schema: The session's default schema.
        role: The session's role.
        warehouse: The session's warehouse.
        query: The SQL statement (required, here or in the call).
        data: Values for the query's placeholders: a sequence for ``%s``, a mapping for
            ``%(name)s``.
        autocommit: True or False to set the session's autocommit; None (default) keeps
            Snowflake's AUTOCOMMIT parameter. Without autocommit the query is committed on
            success and rolled back on an error.
        cursor_type: The cursor class, e.g. ``snowflake.connector.DictCursor`` for rows as
            dicts; None (default) is the connector's ``SnowflakeCursor`` (rows as tuples).
        authenticator: The authenticator (``"oauth"``, ``"externalbrowser"``, ...), see the
            connector's ``connect`` documentation.
        token: The OAuth or JWT token for ``authenticator="oauth"`` (a string or an `aflow.Secret`).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        account: str | None = None,
        user: str | None = None,
        password: Any = None,
        private_key: Any = None,
        database: str | None = None,
        schema: str | None = None,
        role: str | None = None,
        warehouse: str | None = None,
        query: str | None = None,
        data: Data | None = None,
        autocommit: bool | None = None,
        cursor_type: type[Any] | None = None,
        authenticator: str | None = None,
        token: Any = None,
        **kwargs: Any,
    ) -> None:
        self.query = query
        self.data = data
        super().__init__(
            account=account,
            user=user,
            password=password,
            private_key=private_key,
            database=database,
            schema=schema,
            role=role,
            warehouse=warehouse,
            autocommit=autocommit,
            cursor_type=cursor_type,
            authenticator=authenticator,
            token=token,
            **kwargs,
        )

    @defaults_from_attrs(
        "account",
        "user",
        "password",
        "private_key",
        "database",
        "schema",
        "role",
        "warehouse",
        "query",
        "data",
        "autocommit",
        "cursor_type",
        "authenticator",
        "token",
    )
    async def run(
        self,
        account: str | None = None,
        user: str | None = None,
        password: Any = None,
        private_key: Any = None,
        database: str | None = None,
        schema: str | None = None,
        role: str | None = None,
        warehouse: str | None = None,
        query: str | None = None,
        data: Data | None = None,
        autocommit: bool | None = None,
        cursor_type: type[Any] | None = None,
        authenticator: str | None = None,
        token: Any = None,
    ) -> list[Any]:
        """Connect, execute the query with ``data`` bound, and return every row.

        Args:
            account: The account identifier (default: the one given at initialization).
            user: The user name (default: the initialization's).
            password: The password, a string or an `aflow.Secret` (default: the initialization's).
            private_key: A private key (default: the initialization's).
            database: The default database (default: the initialization's).
            schema: The default schema (default: the initialization's).
            role: The role (default: the initialization's).
            warehouse: The warehouse (default: the initialization's).
            query: The SQL statement (default: the initialization's).
            data: Values for the placeholders (default: the initialization's, or none).
            autocommit: The session's autocommit, None for Snowflake's setting (default: the
                initialization's).
            cursor_type: The cursor class (default: the initialization's, else ``SnowflakeCursor``).
            authenticator: The authenticator (default: the initialization's).
            token: The OAuth or JWT token (default: the initialization's).

        Returns:
            The rows, as ``fetchall()`` gives them: a list of tuples, or of dicts with ``DictCursor``.

        Raises:
            ValueError: If ``account``, ``user``, ``query`` or every authentication argument is
                missing, or ``data`` is a string.
            aflow.signals.FAIL: When Snowflake reports an error (the message is the server's).
        """
        cls = type(self).__name__
        sql: str = _need(query, "query", cls, "a query string")
        if isinstance(data, (str, bytes)):
            raise ValueError(
                f"{cls} data must be a sequence or a mapping, not a string: wrap a single value "
                "in a tuple, e.g. data=(value,)"
            )
        params = await _connect_params(
            cls,
            {
                "account": account,
                "user": user,
                "password": password,
                "private_key": private_key,
                "database": database,
                "schema": schema,
                "role": role,
                "warehouse": warehouse,
                "autocommit": autocommit,
                "authenticator": authenticator,
                "token": token,
            },
        )

        def job(session: _Session, conn: Any) -> list[Any]:
            cursor = session.cursor(conn, cursor_type)
            try:
                return list(cursor.execute(sql, data).fetchall())
            finally:
                cursor.close()

        return await _run(params, job)


class SnowflakeQueriesFromFile(_SnowflakeTask):
    """Run the statements of a SQL file on Snowflake and return each one's rows.

    The file is run with the connector's ``execute_string``: its text goes to Snowflake as it
    is, statement by statement, so it must come from a trusted source (it takes no bound values;
    use `SnowflakeQuery` with ``data`` for values).

    Args:
        account: The Snowflake account identifier (required, here or in the call).
        user: The user name to authenticate with (required, here or in the call).
        password: The password (a string or an `aflow.Secret`); ``password``, ``private_key``,
            ``authenticator`` or ``token`` must be given.
        private_key: A private key to authenticate with (key-pair authentication).
        database: The session's default database.
        schema: The session's default schema.
        role: The session's role.
        warehouse: The session's warehouse.
        file_path: The SQL file (a str or a `pathlib.Path`; required, here or in the call).
        autocommit: True or False to set the session's autocommit; None (default) keeps
            Snowflake's AUTOCOMMIT parameter. Without autocommit the statements are committed
            when all succeed and rolled back when one fails.
        cursor_type: The cursor class, e.g. ``snowflake.connector.DictCursor`` for rows as
            dicts; None (default) is the connector's ``SnowflakeCursor`` (rows as tuples).
        authenticator: The authenticator (``"oauth"``, ``"externalbrowser"``, ...).
        token: The OAuth or JWT token for ``authenticator="oauth"`` (a string or an `aflow.Secret`).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        account: str | None = None,
        user: str | None = None,
        password: Any = None,
        private_key: Any = None,
        database: str | None = None,
        schema: str | None = None,
        role: str | None = None,
        warehouse: str | None = None,
        file_path: str | Path | None = None,
        autocommit: bool | None = None,
        cursor_type: type[Any] | None = None,
        authenticator: str | None = None,
        token: Any = None,
        **kwargs: Any,
    ) -> None:
        self.file_path = file_path
        super().__init__(
            account=account,
            user=user,
            password=password,
            private_key=private_key,
            database=database,
            schema=schema,
            role=role,
            warehouse=warehouse,
            autocommit=autocommit,
            cursor_type=cursor_type,
            authenticator=authenticator,
            token=token,
            **kwargs,
        )

    @defaults_from_attrs(
        "account",
        "user",
        "password",
        "private_key",
        "database",
        "schema",
        "role",
        "warehouse",
        "file_path",
        "autocommit",
        "cursor_type",
        "authenticator",
        "token",
    )
    async def run(
        self,
        account: str | None = None,
        user: str | None = None,
        password: Any = None,
        private_key: Any = None,
        database: str | None = None,
        schema: str | None = None,
        role: str | None = None,
        warehouse: str | None = None,
        file_path: str | Path | None = None,
        autocommit: bool | None = None,
        cursor_type: type[Any] | None = None,
        authenticator: str | None = None,
        token: Any = None,
    ) -> list[list[Any]]:
        """Read the file, connect, run its statements, and return one row list per statement.

        Args:
            account: The account identifier (default: the one given at initialization).
            user: The user name (default: the initialization's).
            password: The password, a string or an `aflow.Secret` (default: the initialization's).
            private_key: A private key (default: the initialization's).
            database: The default database (default: the initialization's).
            schema: The default schema (default: the initialization's).
            role: The role (default: the initialization's).
            warehouse: The warehouse (default: the initialization's).
            file_path: The SQL file (default: the initialization's).
            autocommit: The session's autocommit, None for Snowflake's setting (default: the
                initialization's).
            cursor_type: The cursor class (default: the initialization's, else ``SnowflakeCursor``).
            authenticator: The authenticator (default: the initialization's).
            token: The OAuth or JWT token (default: the initialization's).

        Returns:
            A list with each statement's ``fetchall()`` result, in the file's order.

        Raises:
            ValueError: If ``account``, ``user``, ``file_path`` or every authentication argument
                is missing.
            FileNotFoundError: If there is no file at ``file_path`` (the message names it).
            aflow.signals.FAIL: When Snowflake reports an error (the message is the server's).
        """
        cls = type(self).__name__
        path = Path(_need(file_path, "file_path", cls, "a file path"))
        params = await _connect_params(
            cls,
            {
                "account": account,
                "user": user,
                "password": password,
                "private_key": private_key,
                "database": database,
                "schema": schema,
                "role": role,
                "warehouse": warehouse,
                "autocommit": autocommit,
                "authenticator": authenticator,
                "token": token,
            },
        )
        try:
            sql = await anyio.Path(path).read_text()
        except FileNotFoundError:
            raise FileNotFoundError(f"{cls}: no SQL file at {str(path)!r}") from None

        def job(session: _Session, conn: Any) -> list[list[Any]]:
            kwargs: dict[str, Any] = {} if cursor_type is None else {"cursor_class": cursor_type}
            cursors = conn.execute_string(sql, **kwargs)
            results = []
            for cursor in cursors:
                with session.lock:
                    session.cursors.append(cursor)
                results.append(list(cursor.fetchall()))
            return results

        return await _run(params, job)
