"""AWS Lambda tasks: `LambdaCreate`, `LambdaDelete`, `LambdaInvoke`, `LambdaList`."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from aflow import defaults_from_attrs
from aflow.signals import FAIL

from ._client import AWSTask, aws_errors

__all__ = ("LambdaCreate", "LambdaDelete", "LambdaInvoke", "LambdaList")

INVOCATION_TYPES = frozenset({"RequestResponse", "Event", "DryRun"})


def _need(value: Any, task: str, arg: str) -> None:
    if value is None or value == "":
        raise ValueError(
            f"{task} needs {arg}: give it at initialization ({task}({arg}=...)) or to the call ({arg}=...)"
        )


def _strip(response: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


class LambdaCreate(AWSTask):
    """Create a Lambda function and return its ARN.

    The code comes from a local zip file (``zip_file``) or from S3 (``bucket`` and
    ``bucket_key``).

    Args:
        function_name: The function's name. Defaults to None (give it to the call).
        runtime: The runtime (``"python3.12"``...). Defaults to None (required).
        role: The ARN of the function's execution role. Defaults to None (required).
        handler: The handler (``"main.handler"``). Defaults to None (required for zip code).
        zip_file: Path of a local zip of the code. Defaults to None.
        bucket: Bucket of the code's zip (when no ``zip_file``). Defaults to ``""``.
        bucket_key: Key of the code's zip. Defaults to ``""``.
        object_version: Version of the code's zip object. Defaults to None.
        description: The function's description. Defaults to ``""``.
        function_timeout: Seconds the function may run. Defaults to 3.
        memory_size: Memory in MB. Defaults to 128.
        publish: Publish a first version. Defaults to True.
        subnet_ids: VPC subnets. Defaults to None.
        security_group_ids: VPC security groups. Defaults to None.
        dead_letter_config: ``DeadLetterConfig`` of the API. Defaults to None.
        environment_variables: The function's environment. Defaults to None.
        kms_key_arn: Key for the environment's encryption. Defaults to ``""``.
        function_tags: Tags of the function. Defaults to None.
        tracing_config: ``"Active"`` or ``"PassThrough"``. Defaults to ``"PassThrough"``.
        layers: Layer version ARNs. Defaults to None.
        credentials: See `aflow_tasks.aws.AWSTask` (also ``region_name``, ``endpoint_url``,
            ``client_kwargs``). Defaults to None.
        **kwargs: Client settings and `aflow.Task` arguments.
    """

    def __init__(
        self,
        function_name: str | None = None,
        runtime: str | None = None,
        role: str | None = None,
        handler: str | None = None,
        zip_file: str | os.PathLike[str] | None = None,
        bucket: str = "",
        bucket_key: str = "",
        object_version: str | None = None,
        description: str = "",
        function_timeout: int = 3,
        memory_size: int = 128,
        publish: bool = True,
        subnet_ids: Sequence[str] | None = None,
        security_group_ids: Sequence[str] | None = None,
        dead_letter_config: Mapping[str, Any] | None = None,
        environment_variables: Mapping[str, str] | None = None,
        kms_key_arn: str = "",
        function_tags: Mapping[str, str] | None = None,
        tracing_config: str = "PassThrough",
        layers: Sequence[str] | None = None,
        credentials: Any = None,
        **kwargs: Any,
    ) -> None:
        self.function_name = function_name
        self.runtime = runtime
        self.role = role
        self.handler = handler
        self.zip_file = zip_file
        self.bucket = bucket
        self.bucket_key = bucket_key
        self.object_version = object_version
        self.description = description
        self.function_timeout = function_timeout
        self.memory_size = memory_size
        self.publish = publish
        self.subnet_ids = subnet_ids
        self.security_group_ids = security_group_ids
        self.dead_letter_config = dead_letter_config
        self.environment_variables = environment_variables
        self.kms_key_arn = kms_key_arn
        self.function_tags = function_tags
        self.tracing_config = tracing_config
        self.layers = layers
        super().__init__(credentials=credentials, **kwargs)

    @defaults_from_attrs("function_name", "credentials")
    async def run(self, function_name: str | None = None, credentials: Any = None) -> str:
        """Create the function.

        Args:
            function_name: The function's name (default: the initialization's; required).
            credentials: AWS credentials (default: the initialization's).

        Returns:
            The function's ARN.

        Raises:
            ValueError: A required setting is missing.
            FAIL: Lambda refused (the error code and message in the message).
        """
        _need(function_name, "LambdaCreate", "function_name")
        _need(self.runtime, "LambdaCreate", "runtime")
        _need(self.role, "LambdaCreate", "role")
        code: dict[str, Any]
        if self.zip_file is not None:
            _need(self.handler, "LambdaCreate", "handler")
            code = {"ZipFile": await anyio.Path(self.zip_file).read_bytes()}
        elif self.bucket and self.bucket_key:
            code = {"S3Bucket": self.bucket, "S3Key": self.bucket_key}
            if self.object_version:
                code["S3ObjectVersion"] = self.object_version
        else:
            raise ValueError("LambdaCreate needs code: give zip_file=, or bucket= and bucket_key=")
        args: dict[str, Any] = {
            "FunctionName": function_name,
            "Runtime": self.runtime,
            "Role": self.role,
            "Code": code,
            "Description": self.description,
            "Timeout": self.function_timeout,
            "MemorySize": self.memory_size,
            "Publish": self.publish,
            "TracingConfig": {"Mode": self.tracing_config},
        }
        if self.handler:
            args["Handler"] = self.handler
        if self.subnet_ids or self.security_group_ids:
            args["VpcConfig"] = {
                "SubnetIds": list(self.subnet_ids or ()),
                "SecurityGroupIds": list(self.security_group_ids or ()),
            }
        if self.dead_letter_config:
            args["DeadLetterConfig"] = dict(self.dead_letter_config)
        if self.environment_variables:
            args["Environment"] = {"Variables": dict(self.environment_variables)}
        if self.kms_key_arn:
            args["KMSKeyArn"] = self.kms_key_arn
        if self.function_tags:
            args["Tags"] = dict(self.function_tags)
        if self.layers:
            args["Layers"] = list(self.layers)
        async with self._client("lambda", credentials) as client, aws_errors(self, f"Lambda create {function_name}"):
            response = await client.create_function(**args)
        return str(response["FunctionArn"])


class LambdaDelete(AWSTask):
    """Delete a Lambda function (or one version of it).

    Args:
        function_name: The function's name or ARN. Defaults to None (give it to the call).
        qualifier: A version to delete instead of the whole function. Defaults to ``""``.
        credentials: See `aflow_tasks.aws.AWSTask` (also ``region_name``, ``endpoint_url``,
            ``client_kwargs``). Defaults to None.
        **kwargs: Client settings and `aflow.Task` arguments.
    """

    def __init__(
        self, function_name: str | None = None, qualifier: str = "", credentials: Any = None, **kwargs: Any
    ) -> None:
        self.function_name = function_name
        self.qualifier = qualifier
        super().__init__(credentials=credentials, **kwargs)

    @defaults_from_attrs("function_name", "qualifier", "credentials")
    async def run(
        self, function_name: str | None = None, qualifier: str | None = None, credentials: Any = None
    ) -> dict[str, Any]:
        """Delete the function.

        Args:
            function_name: The function's name or ARN (default: the initialization's; required).
            qualifier: The version to delete (default: the initialization's).
            credentials: AWS credentials (default: the initialization's).

        Returns:
            The API's response (without ``ResponseMetadata``; usually empty).

        Raises:
            ValueError: No function name.
            FAIL: Lambda refused (``ResourceNotFoundException``...).
        """
        _need(function_name, "LambdaDelete", "function_name")
        args: dict[str, Any] = {"FunctionName": function_name}
        if qualifier:
            args["Qualifier"] = qualifier
        async with self._client("lambda", credentials) as client, aws_errors(self, f"Lambda delete {function_name}"):
            response = await client.delete_function(**args)
        return _strip(response)


class LambdaInvoke(AWSTask):
    """Invoke a Lambda function and return its decoded JSON answer.

    The payload is sent as JSON (bytes and str are sent as they are). With
    ``invocation_type="RequestResponse"`` the task waits for the answer and returns it decoded
    from JSON (raw text if it is not JSON); a function error (``FunctionError`` in the answer)
    fails the task with the error payload in the message and as the state's result. ``"Event"``
    queues an asynchronous invocation and returns None.

    Args:
        function_name: The function's name or ARN. Defaults to None (give it to the call).
        invocation_type: ``"RequestResponse"``, ``"Event"`` or ``"DryRun"``. Defaults to
            ``"RequestResponse"``.
        log_type: ``"Tail"`` to get the end of the log (logged at debug level). Defaults to ``"None"``.
        client_context: A client context dict (sent base64 JSON). Defaults to None.
        payload: The input (a JSON-able value; bytes or str are sent raw). Defaults to None.
        qualifier: A version or alias. Defaults to None.
        return_response: Return the whole response (``StatusCode``, ``ExecutedVersion``...) with
            ``Payload`` decoded, instead of the payload only. Defaults to False.
        credentials: See `aflow_tasks.aws.AWSTask` (also ``region_name``, ``endpoint_url``,
            ``client_kwargs``). Defaults to None.
        **kwargs: Client settings and `aflow.Task` arguments.
    """

    def __init__(
        self,
        function_name: str | None = None,
        invocation_type: str = "RequestResponse",
        log_type: str = "None",
        client_context: Mapping[str, Any] | None = None,
        payload: Any = None,
        qualifier: str | None = None,
        return_response: bool = False,
        credentials: Any = None,
        **kwargs: Any,
    ) -> None:
        if invocation_type not in INVOCATION_TYPES:
            raise ValueError(f"invocation_type must be one of {sorted(INVOCATION_TYPES)}, got {invocation_type!r}")
        self.function_name = function_name
        self.invocation_type = invocation_type
        self.log_type = log_type
        self.client_context = client_context
        self.payload = payload
        self.qualifier = qualifier
        self.return_response = return_response
        super().__init__(credentials=credentials, **kwargs)

    @defaults_from_attrs(
        "function_name", "invocation_type", "payload", "qualifier", "client_context", "return_response", "credentials"
    )
    async def run(
        self,
        function_name: str | None = None,
        payload: Any = None,
        invocation_type: str | None = None,
        qualifier: str | None = None,
        client_context: Mapping[str, Any] | None = None,
        return_response: bool | None = None,
        credentials: Any = None,
    ) -> Any:
        """Invoke the function.

        Args:
            function_name: The function's name or ARN (default: the initialization's; required).
            payload: The input (default: the initialization's).
            invocation_type: The invocation type (default: the initialization's).
            qualifier: A version or alias (default: the initialization's).
            client_context: A client context dict (default: the initialization's).
            return_response: Return the whole response (default: the initialization's).
            credentials: AWS credentials (default: the initialization's).

        Returns:
            The decoded answer (None for ``"Event"`` and an empty answer), or the response.

        Raises:
            ValueError: No function name, or an unknown invocation type.
            FAIL: The function raised (``FunctionError``) or Lambda refused the call.
        """
        _need(function_name, "LambdaInvoke", "function_name")
        invocation_type = invocation_type or "RequestResponse"
        if invocation_type not in INVOCATION_TYPES:
            raise ValueError(f"invocation_type must be one of {sorted(INVOCATION_TYPES)}, got {invocation_type!r}")
        body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
        args: dict[str, Any] = {
            "FunctionName": function_name,
            "InvocationType": invocation_type,
            "LogType": self.log_type,
            "Payload": body,
        }
        if qualifier:
            args["Qualifier"] = qualifier
        if client_context:
            args["ClientContext"] = base64.b64encode(json.dumps(client_context).encode()).decode()
        label = f"Lambda invoke {function_name}"
        async with self._client("lambda", credentials) as client, aws_errors(self, label):
            response = await client.invoke(**args)
            stream = response.get("Payload")
            raw = b""
            if stream is not None:
                async with stream:
                    raw = await stream.read()
        if response.get("LogResult"):
            self.logger.debug("%s log:\n%s", label, base64.b64decode(response["LogResult"]).decode(errors="replace"))
        answer = _decode(raw)
        if response.get("FunctionError"):
            raise FAIL(
                f"{label}: the function failed ({response['FunctionError']}): {raw.decode(errors='replace')}",
                result=answer,
            )
        if return_response:
            out = _strip(response)
            out["Payload"] = answer
            return out
        return answer if invocation_type == "RequestResponse" else None


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


class LambdaList(AWSTask):
    """List Lambda functions (every page) and return their configurations.

    Args:
        master_region: ``"ALL"`` or a region, for Lambda@Edge replicas. Defaults to None.
        function_version: ``"ALL"`` to list every published version. Defaults to None.
        max_items: Stop after this many functions. Defaults to None (all).
        credentials: See `aflow_tasks.aws.AWSTask` (also ``region_name``, ``endpoint_url``,
            ``client_kwargs``). Defaults to None.
        **kwargs: Client settings and `aflow.Task` arguments.
    """

    def __init__(
        self,
        master_region: str | None = None,
        function_version: str | None = None,
        max_items: int | None = None,
        credentials: Any = None,
        **kwargs: Any,
    ) -> None:
        self.master_region = master_region
        self.function_version = function_version
        self.max_items = max_items
        super().__init__(credentials=credentials, **kwargs)

    @defaults_from_attrs("master_region", "function_version", "max_items", "credentials")
    async def run(
        self,
        master_region: str | None = None,
        function_version: str | None = None,
        max_items: int | None = None,
        credentials: Any = None,
    ) -> list[dict[str, Any]]:
        """List the functions.

        Args:
            master_region: See the class (default: the initialization's).
            function_version: See the class (default: the initialization's).
            max_items: See the class (default: the initialization's).
            credentials: AWS credentials (default: the initialization's).

        Returns:
            The function configurations (``FunctionName``, ``FunctionArn``, ``Runtime``...).

        Raises:
            FAIL: Lambda refused the call.
        """
        args: dict[str, Any] = {}
        if master_region:
            args["MasterRegion"] = master_region
        if function_version:
            args["FunctionVersion"] = function_version
        if max_items is not None:
            args["PaginationConfig"] = {"MaxItems": max_items}
        functions: list[dict[str, Any]] = []
        async with self._client("lambda", credentials) as client, aws_errors(self, "Lambda list"):
            async for page in client.get_paginator("list_functions").paginate(**args):
                functions.extend(page.get("Functions", ()))
        return functions
