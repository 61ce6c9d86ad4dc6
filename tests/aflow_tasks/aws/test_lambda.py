from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from aflow import Flow, signals
from aflow_tasks.aws import AWSClientWait, LambdaCreate, LambdaDelete, LambdaInvoke, LambdaList, aws_client

from .conftest import REGION, Moto

ASSUME = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


async def make_role(moto: Moto) -> str:
    async with aws_client("iam", **moto.settings) as iam:
        role = await iam.create_role(RoleName="lambda-role", AssumeRolePolicyDocument=ASSUME)
    return str(role["Role"]["Arn"])


def make_zip(tmp_path: Path) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("main.py", "def handler(event, context):\n    return event\n")
    path = tmp_path / "code.zip"
    path.write_bytes(buffer.getvalue())
    return path


async def create_function(moto: Moto, tmp_path: Path, name: str = "echo") -> str:
    role = await make_role(moto)
    create = LambdaCreate(
        function_name=name,
        runtime="python3.12",
        role=role,
        handler="main.handler",
        zip_file=make_zip(tmp_path),
        environment_variables={"MODE": "test"},
        function_tags={"team": "data"},
        **moto.settings,
    )
    return await create.run()


def test_init_defaults_are_stored() -> None:
    create = LambdaCreate()
    assert (create.function_name, create.runtime, create.role, create.handler, create.zip_file) == (None,) * 5
    assert (create.bucket, create.bucket_key, create.function_timeout, create.memory_size) == ("", "", 3, 128)
    assert (create.publish, create.tracing_config, create.kms_key_arn) == (True, "PassThrough", "")
    invoke = LambdaInvoke()
    assert (invoke.function_name, invoke.invocation_type, invoke.log_type, invoke.payload) == (
        None,
        "RequestResponse",
        "None",
        None,
    )
    assert (invoke.qualifier, invoke.client_context, invoke.return_response) == (None, None, False)
    assert (LambdaDelete().function_name, LambdaDelete().qualifier) == (None, "")
    lister = LambdaList()
    assert (lister.master_region, lister.function_version, lister.max_items) == (None, None, None)
    with pytest.raises(ValueError, match="invocation_type must be one of"):
        LambdaInvoke(invocation_type="Sync")


async def test_required_values_missing_give_value_errors(moto: Moto) -> None:
    with pytest.raises(ValueError, match=r"LambdaCreate needs function_name"):
        await LambdaCreate(**moto.settings).run()
    with pytest.raises(ValueError, match=r"LambdaCreate needs runtime"):
        await LambdaCreate(function_name="f", **moto.settings).run()
    with pytest.raises(ValueError, match=r"LambdaCreate needs code"):
        await LambdaCreate(function_name="f", runtime="python3.12", role="r", **moto.settings).run()
    with pytest.raises(ValueError, match=r"LambdaInvoke needs function_name"):
        await LambdaInvoke(**moto.settings).run()
    with pytest.raises(ValueError, match=r"LambdaDelete needs function_name"):
        await LambdaDelete(**moto.settings).run()


async def test_create_list_invoke_delete(moto: Moto, tmp_path: Path) -> None:
    arn = await create_function(moto, tmp_path)
    assert arn == "arn:aws:lambda:us-east-1:123456789012:function:echo"
    functions = await LambdaList(**moto.settings).run()
    assert [f["FunctionName"] for f in functions] == ["echo"]
    assert functions[0]["Environment"] == {"Variables": {"MODE": "test"}}
    # the function becomes active: wait for it with a botocore waiter
    await AWSClientWait(client="lambda", waiter_name="function_active_v2", **moto.settings).run(
        waiter_kwargs={"FunctionName": "echo"}
    )
    # moto's simple Lambda backend echoes the payload: JSON goes out and comes back decoded
    invoke = LambdaInvoke(function_name="echo", **moto.settings)
    assert await invoke.run(payload={"n": [1, 2]}) == {"n": [1, 2]}
    full = await invoke.run(payload={"n": 3}, return_response=True)
    assert full["StatusCode"] == 200
    assert full["Payload"] == {"n": 3}
    assert await invoke.run(payload="not json") == "not json"
    assert await invoke.run(payload={"n": 4}, invocation_type="Event") is None
    deleted = await LambdaDelete(function_name="echo", **moto.settings).run()
    assert "ResponseMetadata" not in deleted
    assert await LambdaList(**moto.settings).run() == []


async def test_invoke_returns_the_queued_result(moto: Moto, tmp_path: Path) -> None:
    await create_function(moto, tmp_path)
    await moto.api("static/lambda-simple/response", {"results": ['{"answer": 42}'], "region": REGION})
    assert await LambdaInvoke(function_name="echo", **moto.settings).run(payload={}) == {"answer": 42}


async def test_function_error_fails_with_the_error_payload(moto: Moto, tmp_path: Path) -> None:
    await create_function(moto, tmp_path)
    # moto's simple backend turns an answer over 6 MB into a real FunctionError (as AWS does)
    await moto.api("static/lambda-simple/response", {"results": ["x" * 6_100_000], "region": REGION})
    with pytest.raises(signals.FAIL, match=r"^Lambda invoke echo: the function failed \(Unhandled\): ") as info:
        await LambdaInvoke(function_name="echo", **moto.settings).run(payload={"n": 1})
    assert "Function.ResponseSizeTooLarge" in str(info.value)
    assert info.value.state.result["errorType"] == "Function.ResponseSizeTooLarge"


async def test_calls_on_a_missing_function_fail(moto: Moto) -> None:
    with pytest.raises(signals.FAIL, match=r"^Lambda delete ghost failed: ResourceNotFoundException: "):
        await LambdaDelete(function_name="ghost", **moto.settings).run()


async def test_create_with_a_bad_role_fails(moto: Moto, tmp_path: Path) -> None:
    create = LambdaCreate(
        function_name="f",
        runtime="python3.12",
        role="not-a-role",
        handler="h.h",
        zip_file=make_zip(tmp_path),
        **moto.settings,
    )
    with pytest.raises(signals.FAIL, match=r"^Lambda create f failed: "):
        await create.run()


async def test_call_override_wins(moto: Moto, tmp_path: Path) -> None:
    await create_function(moto, tmp_path, "first")
    await create_function_second(moto, tmp_path)
    invoke = LambdaInvoke(function_name="no-such-function", payload={"from": "init"}, **moto.settings)
    assert await invoke.run(function_name="second", payload={"from": "call"}) == {"from": "call"}
    assert await invoke.run(function_name="second") == {"from": "init"}
    assert len(await LambdaList(max_items=5, **moto.settings).run(max_items=1)) == 1


async def create_function_second(moto: Moto, tmp_path: Path) -> None:
    async with aws_client("iam", **moto.settings) as iam:
        role = (await iam.get_role(RoleName="lambda-role"))["Role"]["Arn"]
    await LambdaCreate(
        runtime="python3.12", role=role, handler="main.handler", zip_file=make_zip(tmp_path), **moto.settings
    ).run(function_name="second")


async def test_lambda_tasks_in_a_flow(moto: Moto, tmp_path: Path) -> None:
    role = await make_role(moto)
    # no credentials here: they come from the AWS_CREDENTIALS secret
    settings: dict[str, Any] = {"region_name": REGION, "endpoint_url": moto.url}
    with Flow("lambda") as flow:
        created = LambdaCreate(
            function_name="flowfn",
            runtime="python3.12",
            role=role,
            handler="main.handler",
            zip_file=make_zip(tmp_path),
            **settings,
        )()
        answer = LambdaInvoke(**settings)(function_name="flowfn", payload={"ok": True}, upstream_tasks=[created])
    state = await flow.run(context={"secrets": {"AWS_CREDENTIALS": moto.settings["credentials"]}})
    assert state.is_successful(), state.message
    assert state.result[created].result.endswith(":function:flowfn")
    assert state.result[answer].result == {"ok": True}
