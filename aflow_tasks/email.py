"""Email over SMTP with aiosmtplib: an HTML and/or plain-text message, CC, BCC and attachments.

`EmailTask` keeps Prefect 1's argument names. Credentials are ``username`` and ``password``,
which may be lazy secrets (``password=aflow.Secret("EMAIL_PASSWORD")``); left at None, they
fall back to the secrets ``EMAIL_USERNAME`` and ``EMAIL_PASSWORD`` as in Prefect 1, and without
either the message is sent without logging in. The task logs in only over SSL or STARTTLS:
with ``smtp_type="INSECURE"`` the fallback secrets are not read (as in Prefect 1) and a
``username`` or ``password`` given to it is refused with a ``ValueError`` before anything is
sent. The password is registered for redaction, and never appears in a failure message or a log
line.

Needs the ``email`` extra: ``pip install aflow-engine[email]``.
"""

from __future__ import annotations

import mimetypes
import os
import ssl
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from types import ModuleType
from typing import Any, TypeAlias

import anyio

from aflow import Task, defaults_from_attrs
from aflow.exceptions import SecretNotFound
from aflow.integration import Failure, is_lazy, map_errors, resolve_lazy
from aflow.secrets import Secret, register
from aflow.signals import FAIL

__all__ = ("SMTP_TYPES", "EmailTask")

SMTP_TYPES = frozenset({"SSL", "STARTTLS", "INSECURE"})
"""The values of ``smtp_type``: TLS from the start, STARTTLS after connecting, or no encryption."""

Addresses: TypeAlias = "str | Iterable[str]"


def _aiosmtplib() -> ModuleType:
    try:
        import aiosmtplib
    except ImportError as exc:
        raise ImportError("email tasks need aiosmtplib: pip install aflow-engine[email]") from exc
    return aiosmtplib


def _addresses(value: Addresses | None, arg: str) -> list[str]:
    """A comma-separated string or an iterable of addresses, as a list."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"EmailTask {arg} must hold address strings, got {item!r}")
        if item.strip():
            out.append(item.strip())
    return out


def _refuse_insecure_login(smtp_type: str | None, username: Any, password: Any) -> None:
    """Credentials never go over an unencrypted connection: refuse them before anything is sent."""
    if (smtp_type or "").upper() == "INSECURE" and (username is not None or password is not None):
        given = " and ".join(n for n, v in (("username", username), ("password", password)) if v is not None)
        raise ValueError(
            f"EmailTask will not log in over smtp_type='INSECURE' ({given} given): the password would "
            "cross the network unencrypted. Use smtp_type='SSL' or 'STARTTLS' to log in, or give no "
            "username and password to send without logging in"
        )


def _fallback_secret(name: str) -> Any:
    try:
        return Secret(name).get()
    except SecretNotFound:
        return None


async def _attachment(path: str | os.PathLike[str]) -> tuple[bytes, str, str, str]:
    file = anyio.Path(path)
    data = await file.read_bytes()
    ctype, encoding = mimetypes.guess_type(file.name)
    if ctype is None or encoding is not None:  # unknown, or compressed (.gz): send the bytes as they are
        ctype = "application/octet-stream"
    maintype, subtype = ctype.split("/", 1)
    return data, maintype, subtype, file.name


class EmailTask(Task):
    """Send an email through an SMTP server.

    Args:
        subject: The subject line (default None: none).
        msg: The HTML body (default None). With ``msg_plain`` too, the message carries both
            as alternatives.
        email_to: Recipients: an address, a comma-separated string or a list (default None:
            give it to the call; required).
        email_from: The sender (default None: the ``username``; required if there is none).
        smtp_server: The SMTP server's host (default ``"smtp.gmail.com"``).
        smtp_port: The server's port (default 465).
        smtp_type: ``"SSL"`` (TLS from the start, the default), ``"STARTTLS"`` (upgrade after
            connecting) or ``"INSECURE"`` (no encryption: for local relays and tests; never
            logs in, so ``username`` and ``password`` are refused with it).
        msg_plain: The plain-text body (default None).
        email_to_cc: Carbon-copy recipients, shown in the ``Cc`` header (default None).
        email_to_bcc: Blind-copy recipients, given only to the server, never in a header
            (default None).
        attachments: Paths of files to attach (default None).
        username: The login user (default None: the secret ``EMAIL_USERNAME`` if set, else no
            login; never read for ``"INSECURE"``). May be a lazy secret.
        password: The login password (default None: the secret ``EMAIL_PASSWORD``; never read
            for ``"INSECURE"``). May be a lazy secret such as ``aflow.Secret("EMAIL_PASSWORD")``.
        tls_context: An ``ssl.SSLContext`` for SSL and STARTTLS (default None: the system's CA
            certificates, with verification).
        **kwargs: `aflow.Task` attributes.

    Raises:
        ValueError: If ``smtp_type`` is ``"INSECURE"`` and a ``username`` or ``password`` is
            given: the task never logs in over an unencrypted connection.
    """

    def __init__(
        self,
        subject: str | None = None,
        msg: str | None = None,
        email_to: Addresses | None = None,
        email_from: str | None = None,
        smtp_server: str = "smtp.gmail.com",
        smtp_port: int = 465,
        smtp_type: str = "SSL",
        msg_plain: str | None = None,
        email_to_cc: Addresses | None = None,
        email_to_bcc: Addresses | None = None,
        attachments: Iterable[str | os.PathLike[str]] | None = None,
        username: Any = None,
        password: Any = None,
        tls_context: ssl.SSLContext | None = None,
        **kwargs: Any,
    ) -> None:
        self.subject = subject
        self.msg = msg
        self.email_to = email_to
        self.email_from = email_from
        self.smtp_server = smtp_server
        self.smtp_port = smtp_port
        self.smtp_type = smtp_type
        self.msg_plain = msg_plain
        self.email_to_cc = email_to_cc
        self.email_to_bcc = email_to_bcc
        self.attachments = attachments
        self.username = username
        self.password = password
        self.tls_context = tls_context
        _refuse_insecure_login(smtp_type, username, password)
        super().__init__(**kwargs)

    @defaults_from_attrs(
        "subject",
        "msg",
        "email_to",
        "email_from",
        "smtp_server",
        "smtp_port",
        "smtp_type",
        "msg_plain",
        "email_to_cc",
        "email_to_bcc",
        "attachments",
        "username",
        "password",
        "tls_context",
    )
    async def run(
        self,
        subject: str | None = None,
        msg: str | None = None,
        email_to: Addresses | None = None,
        email_from: str | None = None,
        smtp_server: str | None = None,
        smtp_port: int | None = None,
        smtp_type: str | None = None,
        msg_plain: str | None = None,
        email_to_cc: Addresses | None = None,
        email_to_bcc: Addresses | None = None,
        attachments: Iterable[str | os.PathLike[str]] | None = None,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """Build the message and send it. Every argument defaults to the one given at initialization.

        Args:
            subject: The subject line.
            msg: The HTML body.
            email_to: Recipients (an address, a comma-separated string or a list).
            email_from: The sender.
            smtp_server: The SMTP server's host.
            smtp_port: The server's port.
            smtp_type: ``"SSL"``, ``"STARTTLS"`` or ``"INSECURE"``.
            msg_plain: The plain-text body.
            email_to_cc: Carbon-copy recipients.
            email_to_bcc: Blind-copy recipients.
            attachments: Paths of files to attach.
            username: The login user (a lazy secret works here too).
            password: The login password (a lazy secret works here too).
            tls_context: The ``ssl.SSLContext`` for SSL and STARTTLS.

        Raises:
            ValueError: If ``email_to``, ``email_from``, the body or a setting is missing or
                invalid, only one of ``username`` and ``password`` is known, or either is given
                with ``smtp_type="INSECURE"`` (nothing is sent: log in over SSL or STARTTLS).
            aflow.signals.FAIL: If the server refuses the login, the sender or every recipient, or
                cannot be reached; the message never contains the password. Recipients refused
                while others are accepted are logged as a warning.
        """
        to, cc, bcc = (
            _addresses(email_to, "email_to"),
            _addresses(email_to_cc, "email_to_cc"),
            _addresses(email_to_bcc, "email_to_bcc"),
        )
        mode = _checked(to, msg, msg_plain, smtp_server, smtp_port, smtp_type)
        username, password = await _credentials(mode, username, password)
        email_from = email_from or username
        if not email_from:
            raise ValueError(
                "EmailTask needs email_from: give EmailTask(email_from=...) or pass email_from= to the call"
            )
        message = await _message(subject, email_from, to, cc, msg, msg_plain, attachments)
        aiosmtplib = _aiosmtplib()
        where = f"{smtp_server}:{smtp_port}"
        smtp = aiosmtplib.SMTP(
            hostname=smtp_server,
            port=smtp_port,
            use_tls=mode == "SSL",
            start_tls=mode == "STARTTLS",
            tls_context=tls_context,
        )
        async with _smtp_errors(where), smtp:
            if username is not None and mode != "INSECURE":  # never a login in clear text
                try:
                    await smtp.login(username, password)
                except aiosmtplib.SMTPAuthenticationError as exc:
                    raise FAIL(f"SMTP login as {username!r} at {where} was refused: {exc.code} {exc.message}") from None
            refused, _ = await smtp.send_message(message, sender=email_from, recipients=[*to, *cc, *bcc])
        if refused:  # the others got it: failing (and retrying) would send it to them again
            self.logger.warning(
                "The server refused some recipients: %s",
                ", ".join(f"{rcpt} ({response.code} {response.message})" for rcpt, response in refused.items()),
            )


def _checked(
    to: list[str], msg: str | None, msg_plain: str | None, server: str | None, port: int | None, smtp_type: str | None
) -> str:
    """Check the send's settings (ValueError naming the fix); return the SMTP type, upper-case."""
    if not to:
        raise ValueError("EmailTask needs email_to: give EmailTask(email_to=...) or pass email_to= to the call")
    if msg is None and msg_plain is None:
        raise ValueError("EmailTask needs a body: give msg= (HTML) or msg_plain= (plain text)")
    if not server or port is None:
        raise ValueError("EmailTask needs smtp_server and smtp_port")
    mode = (smtp_type or "").upper()
    if mode not in SMTP_TYPES:
        raise ValueError(f"EmailTask smtp_type must be one of {sorted(SMTP_TYPES)}, got {smtp_type!r}")
    return mode


def _smtp_errors(where: str) -> map_errors:
    """Turn aiosmtplib's errors (and TLS and socket errors) into `FAIL`."""
    aiosmtplib = _aiosmtplib()

    def classify(exc: Exception) -> Failure:
        return Failure(f"Could not send the email through {where}: {type(exc).__name__}: {exc}")

    return map_errors((aiosmtplib.SMTPException, OSError), classify)


async def _credentials(mode: str, username: Any, password: Any) -> tuple[Any, Any]:
    """The login (lazy values read, the fallback secrets looked up), checked: both or neither."""
    _refuse_insecure_login(mode, username, password)  # before a lazy secret is even read
    if is_lazy(username):  # a lazy secret given to the call
        username = await resolve_lazy(username)
    if is_lazy(password):
        password = await resolve_lazy(password)
    if mode != "INSECURE":  # as Prefect 1: the fallback secrets are not read for an INSECURE send
        if username is None:
            username = _fallback_secret("EMAIL_USERNAME")
        if password is None:
            password = _fallback_secret("EMAIL_PASSWORD")
    if password is not None:
        register(password)
        if not isinstance(password, str):  # never show the value: only its type
            raise ValueError(
                f"EmailTask password must be a string, got a {type(password).__name__}: a secret that "
                "parses as JSON (digits only, for instance) is decoded; store it as a JSON string instead"
            )
    if (username is None) != (password is None):
        missing = "password" if password is None else "username"
        raise ValueError(
            f"EmailTask has a {'username' if password is None else 'password'} but no {missing}: give "
            f"{missing}= (a lazy aflow.Secret works) or set the secret EMAIL_{missing.upper()}"
        )
    return username, password


async def _message(
    subject: str | None,
    email_from: str,
    to: list[str],
    cc: list[str],
    msg: str | None,
    msg_plain: str | None,
    attachments: Iterable[str | os.PathLike[str]] | None,
) -> EmailMessage:
    """The message: headers (never ``Bcc``), the HTML and/or plain-text body, the attachments."""
    message = EmailMessage()
    if subject is not None:
        message["Subject"] = subject
    message["From"] = email_from
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Date"] = formatdate(localtime=True)
    # an explicit domain: make_msgid() would otherwise look up this host's name (blocking)
    message["Message-ID"] = make_msgid(domain=parseaddr(email_from)[1].rpartition("@")[2] or "localhost")
    if msg_plain is not None:
        message.set_content(msg_plain)
        if msg is not None:
            message.add_alternative(msg, subtype="html")
    else:
        message.set_content(msg or "", subtype="html")
    for path in attachments or ():
        data, maintype, subtype, filename = await _attachment(path)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message
