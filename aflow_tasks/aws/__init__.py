"""AWS tasks on aiobotocore: S3, Lambda, Step Functions, Batch, waiters, secrets, and `S3Result`.

Every AWS task of a flow run shares one aiobotocore session, and one client per (service,
region, endpoint, credentials, client kwargs), closed when the run ends; a task run outside a
flow opens and closes its own. Credentials come from the ``credentials`` argument (a dict with
``ACCESS_KEY``, ``SECRET_ACCESS_KEY`` and optionally ``SESSION_TOKEN``, typically an
`aflow.Secret`), else the ``AWS_CREDENTIALS`` secret, else botocore's default chain. AWS errors
fail the task with their code and message; throttling and 5xx answers are retried while the
task has retries. Tests inject clients through `clients` (an `aflow.integration.ClientFactory`).

Needs the ``aws`` extra: ``pip install aflow-engine[aws]``.
"""

from __future__ import annotations

from ._client import AWSTask as AWSTask
from ._client import aws_client as aws_client
from ._client import clients as clients
from .batch import BatchSubmit as BatchSubmit
from .lambda_ import LambdaCreate as LambdaCreate
from .lambda_ import LambdaDelete as LambdaDelete
from .lambda_ import LambdaInvoke as LambdaInvoke
from .lambda_ import LambdaList as LambdaList
from .s3 import S3Download as S3Download
from .s3 import S3List as S3List
from .s3 import S3Result as S3Result
from .s3 import S3Upload as S3Upload
from .secrets import AWSParametersManager as AWSParametersManager
from .secrets import AWSSecretsManager as AWSSecretsManager
from .step_function import StepActivate as StepActivate
from .waiter import AWSClientWait as AWSClientWait

__all__ = (
    "AWSClientWait",
    "AWSParametersManager",
    "AWSSecretsManager",
    "AWSTask",
    "BatchSubmit",
    "LambdaCreate",
    "LambdaDelete",
    "LambdaInvoke",
    "LambdaList",
    "S3Download",
    "S3List",
    "S3Result",
    "S3Upload",
    "StepActivate",
    "aws_client",
    "clients",
)
