"""aflow_tasks.email against a real aiosmtpd server on loopback (plain, STARTTLS and SSL)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from aflow import Flow, Secret, task
from aflow import context as aflow_context
from aflow import secrets as secrets_mod
from aflow.secrets import REDACTED
from aflow.signals import FAIL
from aflow.states import Failed, State, Success
from aflow_tasks.email import EmailTask

GUARD = 20
USER = "robot@example.test"
PASSWORD = "pw-Zq81-very-secret"
# aiosmtpd sets its own deprecated Session.login_data after every successful AUTH
AUTH_OK = pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    secrets_mod._clear()
    yield
    secrets_mod._clear()


async def run(flow: Flow, **kwargs: Any) -> State:
    with anyio.fail_after(GUARD):
        return await flow.run(**kwargs)


@dataclass
class Capture:
    """An aiosmtpd handler that keeps every envelope, and the logins it accepted."""

    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[bytes] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.endswith("@refused.test"):
            return "550 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == USER.encode() and data.password == PASSWORD.encode()
        if ok:
            self.logins.append(data.login)
        return AuthResult(success=ok, handled=False)  # handled=True would send no reply at all

    def message(self, i: int = -1) -> EmailMessage:
        content = self.envelopes[i].original_content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Server:
    capture: Capture
    port: int


async def start(
    tls: ssl.SSLContext | None = None, *, implicit_tls: bool = False, auth_require_tls: bool = False
) -> tuple[asyncio.Server, Server]:
    capture = Capture()

    def protocol() -> SMTP:
        return SMTP(
            capture,
            hostname="smtp.test",  # else aiosmtpd looks up this host's name
            authenticator=capture.authenticate,
            auth_require_tls=auth_require_tls,  # False: a login in clear text would be accepted
            tls_context=None if implicit_tls else tls,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol, "127.0.0.1", 0, ssl=tls if implicit_tls else None)
    return server, Server(capture, server.sockets[0].getsockname()[1])


@pytest.fixture
async def smtp() -> AsyncIterator[Server]:
    server, info = await start()
    yield info
    server.close()
    await server.wait_closed()


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return crt, key


@dataclass
class Secure:
    """A STARTTLS server that accepts a login only after TLS, and a client context trusting it."""

    server: Server
    client: ssl.SSLContext

    @property
    def capture(self) -> Capture:
        return self.server.capture

    def send(self, **kwargs: Any) -> EmailTask:
        return send(self.server.port, **{"smtp_type": "STARTTLS", "tls_context": self.client, **kwargs})


@pytest.fixture
async def secure(cert: tuple[Path, Path]) -> AsyncIterator[Secure]:
    server_ctx, client_ctx = _contexts(cert)
    server, info = await start(server_ctx, auth_require_tls=True)
    yield Secure(info, client_ctx)
    server.close()
    await server.wait_closed()


def send(port: int, **kwargs: Any) -> EmailTask:
    base: dict[str, Any] = {
        "smtp_server": "127.0.0.1",
        "smtp_port": port,
        "smtp_type": "INSECURE",
        "email_from": "flows@example.test",
        "email_to": "ops@example.test",
        "msg": "<p>hello</p>",
    }
    return EmailTask(**{**base, **kwargs})


# -- configuration --------------------------------------------------------------------------------


def test_init_defaults_are_stored() -> None:
    t = EmailTask()
    assert (t.smtp_server, t.smtp_port, t.smtp_type) == ("smtp.gmail.com", 465, "SSL")
    for attr in (
        "subject",
        "msg",
        "email_to",
        "email_from",
        "msg_plain",
        "email_to_cc",
        "email_to_bcc",
        "attachments",
        "username",
        "password",
        "tls_context",
    ):
        assert getattr(t, attr) is None, attr
    secret = Secret("EMAIL_PASSWORD")
    t = EmailTask(subject="s", email_to=["a@x.test"], password=secret, smtp_type="STARTTLS", smtp_port=587)
    assert (t.subject, t.email_to, t.password, t.smtp_type, t.smtp_port) == (
        "s",
        ["a@x.test"],
        secret,
        "STARTTLS",
        587,
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"email_to": None}, "EmailTask needs email_to: give EmailTask\\(email_to=...\\)"),
        ({"email_to": " , "}, "needs email_to"),
        ({"msg": None}, "needs a body"),
        ({"email_from": None}, "needs email_from"),
        ({"smtp_type": "TLS"}, "smtp_type must be one of"),
        ({"username": USER, "smtp_type": "STARTTLS"}, "has a username but no password"),
        ({"password": PASSWORD, "smtp_type": "STARTTLS"}, "has a password but no username"),
    ],
)
async def test_missing_or_invalid_values_are_clear_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        await send(1, **kwargs).run()  # fails before connecting: port 1 is never reached


# -- sending --------------------------------------------------------------------------------------


async def test_sends_headers_bodies_cc_bcc_and_attachments(smtp: Server, tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    report.write_bytes(b"a,b\n1,2\n")
    blob = tmp_path / "data.bin.unknownext"
    blob.write_bytes(bytes(range(256)))
    t = send(
        smtp.port,
        subject="Nightly report",
        msg="<h1>Done</h1>",
        msg_plain="Done",
        email_to="ops@example.test, dev@example.test",
        email_to_cc=["lead@example.test"],
        email_to_bcc="audit@example.test",
        attachments=[report, str(blob)],
    )
    await t.run()  # returns None

    (envelope,) = smtp.capture.envelopes
    assert envelope.mail_from == "flows@example.test"
    assert envelope.rcpt_tos == ["ops@example.test", "dev@example.test", "lead@example.test", "audit@example.test"]
    m = smtp.capture.message()
    assert m["Subject"] == "Nightly report"
    assert m["From"] == "flows@example.test"
    assert m["To"] == "ops@example.test, dev@example.test"
    assert m["Cc"] == "lead@example.test"
    assert m["Bcc"] is None
    assert b"audit@example.test" not in (envelope.original_content or b"")
    assert m["Date"] is not None
    assert m["Message-ID"].endswith("@example.test>")
    assert m.get_content_type() == "multipart/mixed"
    plain = m.get_body(preferencelist=("plain",))
    html = m.get_body(preferencelist=("html",))
    assert plain is not None
    assert plain.get_content().strip() == "Done"
    assert html is not None
    assert html.get_content().strip() == "<h1>Done</h1>"
    attachments = {a.get_filename(): a for a in m.iter_attachments()}
    assert set(attachments) == {"report.csv", "data.bin.unknownext"}
    assert attachments["report.csv"].get_content_type() == "text/csv"
    assert attachments["report.csv"].get_payload(decode=True) == b"a,b\n1,2\n"
    assert attachments["data.bin.unknownext"].get_content_type() == "application/octet-stream"
    assert attachments["data.bin.unknownext"].get_payload(decode=True) == bytes(range(256))


async def test_html_only_and_plain_only_messages(smtp: Server) -> None:
    await send(smtp.port, msg="<b>html</b>").run()
    await send(smtp.port, msg=None, msg_plain="just text").run()
    html, plain = smtp.capture.message(0), smtp.capture.message(1)
    assert html.get_content_type() == "text/html"
    assert html.get_content().strip() == "<b>html</b>"
    assert html["Subject"] is None
    assert plain.get_content_type() == "text/plain"
    assert plain.get_content().strip() == "just text"


async def test_call_overrides_init(smtp: Server) -> None:
    t = send(smtp.port, subject="from init", email_to="init@example.test")
    await t.run(subject="from call", email_to=["Call Me <call@example.test>"], email_from="Flows <f@sender.test>")
    m = smtp.capture.message()
    assert m["Subject"] == "from call"
    assert m["To"] == "Call Me <call@example.test>"
    assert m["From"] == "Flows <f@sender.test>"
    assert m["Message-ID"].endswith("@sender.test>")
    assert smtp.capture.envelopes[-1].rcpt_tos == ["call@example.test"]
    assert smtp.capture.envelopes[-1].mail_from == "f@sender.test"


@AUTH_OK
async def test_logs_in_with_a_lazy_secret_password_in_a_flow(secure: Secure) -> None:
    @task
    async def body() -> str:
        return "<p>built upstream</p>"

    with Flow("mail") as flow:
        out = secure.send(username=USER, password=Secret("SMTP_PASSWORD"), email_from=None)(msg=body())
    state = await run(flow, context={"secrets": {"SMTP_PASSWORD": PASSWORD}})
    assert isinstance(state.result[out], Success)
    assert secure.capture.logins == [USER.encode()]
    assert secure.capture.envelopes[0].mail_from == USER  # email_from defaults to the username
    assert secure.capture.message().get_content().strip() == "<p>built upstream</p>"


@AUTH_OK
async def test_lazy_credentials_given_to_the_call_are_resolved(secure: Secure) -> None:
    with Flow("call") as flow:
        out = secure.send()(username=Secret("U"), password=Secret("P"))
    state = await run(flow, context={"secrets": {"U": USER, "P": PASSWORD}})
    assert isinstance(state.result[out], Success)
    assert secure.capture.logins == [USER.encode()]


@AUTH_OK
async def test_credentials_fall_back_to_the_email_secrets(secure: Secure) -> None:
    with Flow("fallback") as flow:
        out = secure.send()()
    state = await run(flow, context={"secrets": {"EMAIL_USERNAME": USER, "EMAIL_PASSWORD": PASSWORD}})
    assert isinstance(state.result[out], Success)
    assert secure.capture.logins == [USER.encode()]


async def test_a_password_decoded_from_json_to_a_number_is_a_clear_error() -> None:
    t = send(1, username=USER, password=Secret("NUMERIC"), smtp_type="STARTTLS")
    with (
        aflow_context.temporary(secrets={"NUMERIC": "90210417"}),
        pytest.raises(ValueError, match="password must be a string") as info,
    ):
        await t.run()
    assert "password must be a string, got a int" in str(info.value)
    assert "90210417" not in str(info.value)


async def test_without_credentials_there_is_no_login(smtp: Server) -> None:
    await send(smtp.port).run()
    assert smtp.capture.logins == []
    assert len(smtp.capture.envelopes) == 1


async def test_insecure_with_credentials_is_refused_and_nothing_is_sent(smtp: Server) -> None:
    # the plain server would accept a login in clear text: the task must never try one
    insecure = "Use smtp_type='SSL' or 'STARTTLS' to log in"
    with pytest.raises(ValueError, match=r"will not log in over smtp_type='INSECURE' \(username and password given\)"):
        EmailTask(smtp_type="insecure", username=USER, password=PASSWORD)  # caught when the task is built
    with pytest.raises(ValueError, match=insecure) as info:
        await send(smtp.port).run(username=USER, password=PASSWORD)
    assert PASSWORD not in str(info.value)
    with pytest.raises(ValueError, match=r"\(password given\)"):
        await send(smtp.port).run(password=PASSWORD)

    with Flow("insecure") as flow:  # lazy secrets given to the call: refused before they are read
        out = send(smtp.port)(username=Secret("U"), password=Secret("P"))
    state = await run(flow, context={"secrets": {"U": USER, "P": PASSWORD}})
    failed = state.result[out]
    assert isinstance(failed, Failed)
    assert insecure in (failed.message or "")
    assert PASSWORD not in (failed.message or "")
    assert smtp.capture.logins == []
    assert smtp.capture.envelopes == []


async def test_insecure_sends_without_reading_the_email_secrets_as_prefect_1(smtp: Server) -> None:
    with Flow("relay") as flow:
        out = send(smtp.port)()
    state = await run(flow, context={"secrets": {"EMAIL_USERNAME": USER, "EMAIL_PASSWORD": PASSWORD}})
    assert isinstance(state.result[out], Success)
    assert smtp.capture.logins == []  # no login in clear text, although the server would take one
    assert len(smtp.capture.envelopes) == 1
    assert secrets_mod.redact(f"x {PASSWORD}") == f"x {PASSWORD}"  # never read, so never registered


async def test_a_refused_login_fails_without_showing_the_password(
    secure: Secure, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "pw-WRONG-0x77-secret"
    with pytest.raises(FAIL) as info:
        await secure.send(username=USER, password=wrong).run()
    assert "SMTP login as 'robot@example.test'" in str(info.value)
    assert "535" in str(info.value)
    assert wrong not in str(info.value)

    with Flow("badauth") as flow:
        out = secure.send(username=USER, password=Secret("SMTP_PASSWORD"))()
    state = await run(flow, context={"secrets": {"SMTP_PASSWORD": wrong}})
    failed = state.result[out]
    assert isinstance(failed, Failed)
    assert failed.message is not None
    assert "was refused: 535" in failed.message
    assert wrong not in failed.message
    assert wrong not in repr(failed.result)
    assert wrong not in caplog.text
    assert secure.capture.envelopes == []
    assert secrets_mod.redact(f"x {wrong}") == f"x {REDACTED}"


async def test_an_unreachable_server_fails() -> None:
    server, info = await start()
    server.close()
    await server.wait_closed()  # the port is free now: nothing listens there
    with pytest.raises(FAIL, match=r"Could not send the email through 127\.0\.0\.1:\d+: SMTPConnectError"):
        await send(info.port).run()


async def test_refused_recipients_fail_the_task_in_a_flow(smtp: Server) -> None:
    with Flow("bad-rcpt") as flow:
        out = send(smtp.port, email_to="nobody@refused.test", email_to_cc="ghost@refused.test")()
    state = await run(flow)
    failed = state.result[out]
    assert isinstance(failed, Failed)
    assert "Could not send the email through 127.0.0.1" in (failed.message or "")
    assert "SMTPRecipientsRefused" in (failed.message or "")
    assert smtp.capture.envelopes == []


async def test_partly_refused_recipients_are_logged(smtp: Server, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="aflow.task.EmailTask"):
        await send(smtp.port, email_to="ops@example.test", email_to_bcc="nobody@refused.test").run()
    assert smtp.capture.envelopes[0].rcpt_tos == ["ops@example.test"]
    assert "refused some recipients: nobody@refused.test (550 no such user here)" in caplog.text


async def test_a_missing_attachment_fails_before_connecting(smtp: Server, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await send(smtp.port, attachments=[tmp_path / "nope.txt"]).run()
    assert smtp.capture.envelopes == []


# -- TLS ------------------------------------------------------------------------------------------


def _contexts(cert: tuple[Path, Path]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    crt, key = cert
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(crt, key)
    client = ssl.create_default_context(cafile=str(crt))
    return server, client


@AUTH_OK
@pytest.mark.parametrize("mode", ["STARTTLS", "SSL"])
async def test_tls_modes_with_a_self_signed_certificate(cert: tuple[Path, Path], mode: str) -> None:
    server_ctx, client_ctx = _contexts(cert)
    server, info = await start(server_ctx, implicit_tls=mode == "SSL")
    try:
        t = send(info.port, smtp_type=mode.lower(), tls_context=client_ctx, username=USER, password=PASSWORD)
        await t.run()
        assert info.capture.logins == [USER.encode()]
        assert len(info.capture.envelopes) == 1
        # the default context verifies the certificate: a self-signed one is refused
        with pytest.raises(FAIL, match="Could not send"):
            await send(info.port, smtp_type=mode, username=USER, password=PASSWORD).run()
    finally:
        server.close()
        await server.wait_closed()


# -- packaging ------------------------------------------------------------------------------------


async def test_missing_aiosmtplib_gives_a_helpful_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiosmtplib", None)
    with pytest.raises(ImportError, match=r"email tasks need aiosmtplib: pip install aflow-engine\[email\]"):
        await send(1).run()
