"""aflow: an async-native task framework in the vocabulary of Prefect 1.

Tasks are classes with an ``async def run``; a `Flow` wires them into a graph; ``await
flow.run()`` runs every task as soon as its upstreams are done, in one event loop.
"""

from __future__ import annotations

from . import context as context
from . import signals as signals
from . import states as states
from . import triggers as triggers
from ._model._apply_map import apply_map as apply_map
from ._model._builtin_tasks import Constant as Constant
from ._model._builtin_tasks import Parameter as Parameter
from ._model._control_flow import FilterTask as FilterTask
from ._model._control_flow import case as case
from ._model._control_flow import ifelse as ifelse
from ._model._control_flow import merge as merge
from ._model._control_flow import switch as switch
from ._model._defaults import LazyDefault as LazyDefault
from ._model._defaults import defaults_from_attrs as defaults_from_attrs
from ._model._edge import Edge as Edge
from ._model._edge import flatten as flatten
from ._model._edge import mapped as mapped
from ._model._edge import unmapped as unmapped
from ._model._flow import Flow as Flow
from ._model._function_task import FunctionTask as FunctionTask
from ._model._function_task import task as task
from ._model._resource_manager import resource_manager as resource_manager
from ._model._task import Task as Task
from ._model._task import tags as tags
from ._runtime._flow_run import FlowRun as FlowRun
from ._runtime._run_resources import run_resource as run_resource
from .exceptions import AflowError as AflowError
from .exceptions import FlowValidationError as FlowValidationError
from .exceptions import ParameterError as ParameterError
from .exceptions import TaskDefinitionError as TaskDefinitionError
from .secrets import Secret as Secret

__version__ = "0.1.0"

__all__ = (
    "AflowError",
    "Constant",
    "Edge",
    "FilterTask",
    "Flow",
    "FlowRun",
    "FlowValidationError",
    "FunctionTask",
    "LazyDefault",
    "Parameter",
    "ParameterError",
    "Secret",
    "Task",
    "TaskDefinitionError",
    "apply_map",
    "case",
    "context",
    "defaults_from_attrs",
    "flatten",
    "ifelse",
    "mapped",
    "merge",
    "resource_manager",
    "run_resource",
    "signals",
    "states",
    "switch",
    "tags",
    "task",
    "triggers",
    "unmapped",
)

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or callable(_obj):
        try:
            _obj.__module__ = __name__
        except (AttributeError, TypeError):
            pass
del _name, _obj
