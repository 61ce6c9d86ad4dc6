from __future__ import annotations

import logging

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError  # type: ignore[import-untyped]

import aflow
from aflow import Flow, signals
from aflow.exceptions import TaskDefinitionError
from aflow.secrets import redact
from aflow_tasks.aws import AWSParametersManager, AWSSecretsManager, S3Upload, aws_client
from aflow_tasks.aws._client import error_signal

from .conftest import CREDS, Moto


async def put_secret(moto: Moto, name: str, value: str) -> None:
    async with aws_client("secretsmanager", **moto.settings) as sm:
        await sm.create_secret(Name=name, SecretString=value)


async def put_parameter(moto: Moto, name: str, value: str, kind: str = "SecureString") -> None:
    async with aws_client("ssm", **moto.settings) as ssm:
        await ssm.put_parameter(Name=name, Value=value, Type=kind)


def test_init_defaults_and_secret_task_rules() -> None:
    sm = AWSSecretsManager()
    assert (sm.secret, sm.version_stage, sm.credentials, sm.checkpoint) == (None, None, None, False)
    pm = AWSParametersManager()
    assert (pm.parameter_name, pm.with_decryption, pm.credentials) == (None, True, None)
    with pytest.raises(ValueError, match="never checkpointed"):
        AWSSecretsManager("x", checkpoint=True)
    assert repr(AWSSecretsManager("db", credentials=CREDS)) == "AWSSecretsManager('db')"


async def test_secrets_manager_json_and_plain(moto: Moto) -> None:
    await put_secret(moto, "db", '{"user": "admin", "password": "pa55-w0rd-db"}')
    await put_secret(moto, "token", "plain-t0ken-value")
    sm = AWSSecretsManager("db", **moto.settings)
    assert await sm.run() == {"user": "admin", "password": "pa55-w0rd-db"}
    assert await sm.run(secret="token") == "plain-t0ken-value"  # the call wins
    assert redact("pw pa55-w0rd-db and plain-t0ken-value") == "pw **** and ****"


async def test_missing_secret_gives_a_clear_error(moto: Moto) -> None:
    with pytest.raises(
        signals.FAIL, match=r"^reading AWS secret 'nope' failed: ResourceNotFoundException: .*can't find"
    ):
        await AWSSecretsManager("nope", **moto.settings).run()
    with pytest.raises(ValueError, match="AWSSecretsManager needs the secret's name"):
        await AWSSecretsManager(**moto.settings).run()


async def test_parameters_manager(moto: Moto) -> None:
    await put_parameter(moto, "/db/password", "s3cure-param-value")
    await put_parameter(moto, "/db/host", "db.local", "String")
    pm = AWSParametersManager("/db/password", **moto.settings)
    assert await pm.run() == "s3cure-param-value"
    assert await pm.run(parameter_name="/db/host") == "db.local"
    assert (await pm.run(with_decryption=False)).startswith("kms:")  # moto's stand-in for ciphertext
    assert redact("s3cure-param-value") == "****"
    with pytest.raises(signals.FAIL, match=r"^reading AWS parameter '/ghost' failed: ParameterNotFound"):
        await pm.run(parameter_name="/ghost")
    with pytest.raises(ValueError, match="AWSParametersManager needs the parameter's name"):
        await AWSParametersManager(**moto.settings).run()


async def test_lazy_defaults_of_other_tasks(moto: Moto) -> None:
    await put_secret(moto, "bucket-name", "lazy-bucket")
    await put_parameter(moto, "/upload/key", "lazy-key", "String")
    async with aws_client("s3", **moto.settings) as s3:
        await s3.create_bucket(Bucket="lazy-bucket")
    upload = S3Upload(
        bucket=AWSSecretsManager("bucket-name", **moto.settings),
        upload_args={"ContentType": "text/plain"},
        **moto.settings,
    )

    @aflow.task
    async def key_from(value: str) -> str:
        return value

    with Flow("lazy") as flow:
        key = AWSParametersManager("/upload/key", **moto.settings)()
        done = upload(data=b"v", key=key_from(key))
    state = await flow.run()
    assert state.is_successful(), state.message
    assert state.result[done].result == "lazy-key"
    async with aws_client("s3", **moto.settings) as s3:
        assert (await s3.head_object(Bucket="lazy-bucket", Key="lazy-key"))["ContentType"] == "text/plain"


async def test_a_missing_lazy_secret_fails_the_consuming_task(moto: Moto) -> None:
    with Flow("missing") as flow:
        up = S3Upload(bucket=AWSSecretsManager("absent", **moto.settings), **moto.settings)(data=b"x", key="k")
    state = await flow.run()
    assert state.is_failed()
    assert "reading AWS secret 'absent' failed: ResourceNotFoundException" in state.result[up].message


def test_tasks_other_than_lazy_ones_are_still_refused_at_init() -> None:
    with pytest.raises(TaskDefinitionError):
        S3Upload(bucket=S3Upload())


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


async def test_throttling_and_5xx_retry_while_retries_remain() -> None:
    task = S3Upload(max_retries=2)
    with aflow.context.temporary(task_run_count=1):
        assert isinstance(error_signal(task, client_error("SlowDown", 503), "x"), signals.RETRY)
        assert isinstance(error_signal(task, client_error("ThrottlingException", 400), "x"), signals.RETRY)
        assert isinstance(error_signal(task, client_error("Weird", 500), "x"), signals.RETRY)
        denied = error_signal(task, client_error("AccessDenied", 403), "S3 upload")
        assert type(denied) is signals.FAIL
        assert denied.message == "S3 upload failed: AccessDenied: m"
    with aflow.context.temporary(task_run_count=3):
        assert type(error_signal(task, client_error("SlowDown", 503), "x")) is signals.FAIL
    assert type(error_signal(S3Upload(), client_error("SlowDown", 503), "x")) is signals.FAIL
    unreachable = error_signal(task, EndpointConnectionError(endpoint_url="http://x"), "S3 upload")
    assert type(unreachable) is signals.FAIL
    assert "EndpointConnectionError" in str(unreachable)


async def test_credentials_never_reach_logs_or_messages(moto: Moto, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with Flow("creds") as flow:
        up = S3Upload(bucket="no-such-bucket", **moto.settings)(data=b"x", key="k")
    state = await flow.run()
    assert state.is_failed()
    assert CREDS["SECRET_ACCESS_KEY"] not in state.result[up].message
    assert CREDS["SECRET_ACCESS_KEY"] not in caplog.text
    assert CREDS["SECRET_ACCESS_KEY"] not in repr(S3Upload(**moto.settings))
    assert redact(CREDS["SECRET_ACCESS_KEY"]) == "****"
