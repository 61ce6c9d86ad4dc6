"""Results: where task return values are stored, for checkpoints, targets and caches.

A `Result` stores values at *locations*: keys formatted from a template with the run's
parameters, context values and the task's inputs (`Result.format`), such as
``"{flow_name}/{task_name}-{map_index}.pkl"``. The engine checks a task's target with
`Result.exists` and `Result.read`, and checkpoints a return value with `Result.write`::

    from aflow.results import LocalResult

    result = LocalResult("/data/results", location="{flow_name}/{today}/{task_full_name}.pkl")
    location = result.format(**values)
    await result.write(42, location)
    assert await result.read(location) == 42

Stores: `LocalResult` (a file per value, written atomically), `SegmentResult` (values appended
to a few segment files in batches: for many small results) and `MemoryResult` (a dict in this
process).
Serializers: `PickleSerializer` (cloudpickle, the default) and `JSONSerializer`. Subclass
`Result` or `Serializer` for others.
"""

from __future__ import annotations

from ._persist._results._local import LocalResult as LocalResult
from ._persist._results._result import DEFAULT_LOCATION as DEFAULT_LOCATION
from ._persist._results._result import MemoryResult as MemoryResult
from ._persist._results._result import Result as Result
from ._persist._results._result import format_location as format_location
from ._persist._results._segment import SegmentResult as SegmentResult
from ._persist._results._serializers import JSONSerializer as JSONSerializer
from ._persist._results._serializers import PickleSerializer as PickleSerializer
from ._persist._results._serializers import Serializer as Serializer

__all__ = (
    "DEFAULT_LOCATION",
    "JSONSerializer",
    "LocalResult",
    "MemoryResult",
    "PickleSerializer",
    "Result",
    "SegmentResult",
    "Serializer",
    "format_location",
)

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or callable(_obj):
        _obj.__module__ = __name__
del _name, _obj
