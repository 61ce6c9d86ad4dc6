"""Secrets from AWS: `AWSSecretsManager` and `AWSParametersManager`, as tasks or lazy defaults.

Both are secret tasks (their results are never checkpointed, see `aflow_tasks.secrets`) and both
have an async ``resolve()``, so an instance given as another task's attribute is read when that
task runs, inside its flow run (sharing the run's client)::

    HttpRequest(url=..., auth=AWSSecretsManager("api-token"))

Every value read is registered for redaction (`aflow.secrets.register`).
"""

from __future__ import annotations

import json
from typing import Any

from aflow import defaults_from_attrs
from aflow.secrets import register
from aflow_tasks.secrets import SecretBase

from ._client import AWSTask, aws_errors

__all__ = ("AWSParametersManager", "AWSSecretsManager")


class AWSSecretsManager(SecretBase, AWSTask):
    """Read a secret from AWS Secrets Manager: a dict when its string is JSON, else the string.

    A binary secret gives bytes. A missing secret fails with ``ResourceNotFoundException`` and
    the secret's name in the message. Also a lazy default (``token=AWSSecretsManager("name")``).

    Args:
        secret: The secret's name or ARN. Defaults to None (give it to the call).
        version_stage: The version stage to read (``"AWSCURRENT"``...). Defaults to None.
        credentials: See `aflow_tasks.aws.AWSTask` (also ``region_name``, ``endpoint_url``,
            ``client_kwargs``). Defaults to None.
        **kwargs: Client settings and `aflow.Task` arguments (see `aflow_tasks.secrets.SecretBase`).
    """

    def __init__(
        self, secret: str | None = None, version_stage: str | None = None, credentials: Any = None, **kwargs: Any
    ) -> None:
        self.secret = secret
        self.version_stage = version_stage
        super().__init__(credentials=credentials, **kwargs)

    def __repr__(self) -> str:
        return f"AWSSecretsManager({self.secret!r})"

    @defaults_from_attrs("secret", "version_stage", "credentials")
    async def run(self, secret: str | None = None, version_stage: str | None = None, credentials: Any = None) -> Any:
        """Read the secret.

        Args:
            secret: The secret's name or ARN (default: the initialization's; required).
            version_stage: The version stage (default: the initialization's).
            credentials: AWS credentials (default: the initialization's).

        Returns:
            The secret: a dict (JSON), a str, or bytes (binary secret).

        Raises:
            ValueError: No secret name.
            FAIL: The secret does not exist (``ResourceNotFoundException``) or cannot be read.
        """
        if not secret:
            raise ValueError(
                "AWSSecretsManager needs the secret's name: AWSSecretsManager(secret='name') or call it with secret="
            )
        args = {"SecretId": secret}
        if version_stage:
            args["VersionStage"] = version_stage
        async with (
            self._client("secretsmanager", credentials) as client,
            aws_errors(self, f"reading AWS secret {secret!r}"),
        ):
            response = await client.get_secret_value(**args)
        if "SecretString" not in response:
            return response.get("SecretBinary")
        value: Any = response["SecretString"]
        register(value)
        try:
            value = json.loads(value)
        except ValueError:
            return value
        register(value)
        return value

    async def resolve(self) -> Any:
        """Read the secret with the initialization's settings (a lazy default)."""
        return await self.run()


class AWSParametersManager(SecretBase, AWSTask):
    """Read a parameter from AWS Systems Manager Parameter Store (SecureString decrypted).

    A missing parameter fails with ``ParameterNotFound`` and its name in the message. Also a
    lazy default (``password=AWSParametersManager("/db/password")``).

    Args:
        parameter_name: The parameter's name. Defaults to None (give it to the call).
        with_decryption: Decrypt SecureString values. Defaults to True.
        credentials: See `aflow_tasks.aws.AWSTask` (also ``region_name``, ``endpoint_url``,
            ``client_kwargs``). Defaults to None.
        **kwargs: Client settings and `aflow.Task` arguments (see `aflow_tasks.secrets.SecretBase`).
    """

    def __init__(
        self,
        parameter_name: str | None = None,
        with_decryption: bool = True,
        credentials: Any = None,
        **kwargs: Any,
    ) -> None:
        self.parameter_name = parameter_name
        self.with_decryption = with_decryption
        super().__init__(credentials=credentials, **kwargs)

    def __repr__(self) -> str:
        return f"AWSParametersManager({self.parameter_name!r})"

    @defaults_from_attrs("parameter_name", "with_decryption", "credentials")
    async def run(
        self, parameter_name: str | None = None, with_decryption: bool | None = None, credentials: Any = None
    ) -> str:
        """Read the parameter.

        Args:
            parameter_name: The parameter's name (default: the initialization's; required).
            with_decryption: Decrypt a SecureString (default: the initialization's).
            credentials: AWS credentials (default: the initialization's).

        Returns:
            The parameter's value (a StringList stays a comma-separated str).

        Raises:
            ValueError: No parameter name.
            FAIL: The parameter does not exist (``ParameterNotFound``) or cannot be read.
        """
        if not parameter_name:
            raise ValueError(
                "AWSParametersManager needs the parameter's name: AWSParametersManager(parameter_name='/x') "
                "or call it with parameter_name="
            )
        decrypt = True if with_decryption is None else with_decryption
        async with (
            self._client("ssm", credentials) as client,
            aws_errors(self, f"reading AWS parameter {parameter_name!r}"),
        ):
            response = await client.get_parameter(Name=parameter_name, WithDecryption=decrypt)
        value = str(response["Parameter"]["Value"])
        if response["Parameter"].get("Type") == "SecureString" and decrypt:
            register(value)
        return value

    async def resolve(self) -> Any:
        """Read the parameter with the initialization's settings (a lazy default)."""
        return await self.run()
