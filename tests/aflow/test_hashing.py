from __future__ import annotations

import collections
import dataclasses
import enum
import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pytest

from aflow import cache_validators
from aflow._persist._hashing import stable_hash

REPO = Path(__file__).resolve().parents[2]

# Built the same way in this process and in subprocesses with other hash seeds.
SAMPLES_CODE = """
import collections, dataclasses, enum, uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import NamedTuple
from zoneinfo import ZoneInfo

class Color(enum.Enum):
    RED = 1
    BLUE = "blue"

@dataclasses.dataclass
class Point:
    x: int
    y: object

class Pair(NamedTuple):
    a: object
    b: object

cycle = [1, "x"]
cycle.append(cycle)

SAMPLES = {
    "none": None,
    "bools": [True, False],
    "ints": [0, -1, 2**100, 10**5000],
    "floats": [0.0, -0.0, 1.5, float("inf"), float("nan"), 1e-300],
    "complex": 1 + 2j,
    "str": "héllo \\u2603 \\ud800",
    "bytes": b"\\x00\\xff" * 10,
    "bytearray": bytearray(b"abc"),
    "tuple": (1, (2, (3,))),
    "dict": {"b": 1, "a": {"z": [1, 2], "y": {"k": None}}, 3: "int key", ("t", 1): b"tuple key"},
    "set_of_str": {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"},
    "frozenset": frozenset({"x", ("y", 1), frozenset({"z"})}),
    "dict_of_sets": {"s": {"a", "b", "c"}, "f": frozenset({"d", "e"})},
    "datetime": datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=ZoneInfo("Europe/Paris")),
    "datetime_fixed": datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2))),
    "naive": datetime(2024, 5, 6),
    "date": date(2024, 2, 29),
    "time": time(12, 30, tzinfo=timezone.utc),
    "timedelta": timedelta(days=1, seconds=2, microseconds=3),
    "decimal": Decimal("3.14159265358979323846264338327950288"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "path": Path("data/in.csv"),
    "pure_posix": PurePosixPath("/etc/hosts"),
    "windows_path": PureWindowsPath("C:/x/y"),
    "enum": [Color.RED, Color.BLUE],
    "dataclass": Point(1, {"tags": {"a", "b"}}),
    "namedtuple": Pair("a", {"b"}),
    "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
    "cycle": cycle,
    "fallback": Fraction(1, 3),
}
"""


def build_samples() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "samples"}
    # dont_inherit: not this module's `from __future__ import annotations`, as in the subprocess
    exec(compile(SAMPLES_CODE, "<samples>", "exec", dont_inherit=True), namespace)
    samples: dict[str, Any] = namespace["SAMPLES"]
    return samples


def digests_in_subprocess(hash_seed: str) -> dict[str, str]:
    code = (
        "import json\n"
        "from aflow._persist._hashing import stable_hash\n"
        'namespace = {"__name__": "samples"}\n'
        f"exec({SAMPLES_CODE!r}, namespace)\n"
        'print(json.dumps({name: stable_hash(value) for name, value in namespace["SAMPLES"].items()}))\n'
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True, timeout=30
    )
    digests: dict[str, str] = json.loads(out.stdout)
    return digests


def test_same_digests_in_processes_with_other_hash_seeds() -> None:
    here = {name: stable_hash(value) for name, value in build_samples().items()}
    first = digests_in_subprocess("1")
    second = digests_in_subprocess("4242")
    assert first == here
    assert second == here
    assert len(set(here.values())) == len(here)  # and the samples do not collide


def test_digest_is_pinned() -> None:
    # Cached inputs may be stored and compared later: changing the encoding invalidates them.
    assert stable_hash({"a": [1, 2.5, None, "x"], "b": (True, b"\x00")}) == PINNED


PINNED = "c98daf43ebdcd6217d4f965f5b60e52161d045deb67a5c39e827435f9a936684"


def test_digest_is_sha256_hex() -> None:
    digest = stable_hash("x")
    assert len(digest) == 64
    assert set(digest) <= set("0123456789abcdef")


def test_dict_key_order_does_not_matter() -> None:
    assert stable_hash({"a": 1, "b": 2, "c": [3]}) == stable_hash({"c": [3], "b": 2, "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})
    assert stable_hash({"a": 1}) != stable_hash({"b": 1})
    # a key's value belongs to that key
    assert stable_hash({"a": 1, "b": 2}) != stable_hash({"a": 2, "b": 1})


def test_set_order_does_not_matter() -> None:
    words = [f"w{i}" for i in range(50)]
    forward, backward = set(), set()
    for word in words:
        forward.add(word)
    for word in reversed(words):
        backward.add(word)
    assert stable_hash(forward) == stable_hash(backward)
    assert stable_hash(frozenset(words)) == stable_hash(frozenset(reversed(words)))
    assert stable_hash(forward) != stable_hash(frozenset(words))  # set and frozenset differ
    assert stable_hash({1, 2}) != stable_hash({1, 3})


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (1, 1.0),
        (1, True),
        (0, False),
        (0.0, -0.0),
        (None, ""),
        (None, 0),
        ("a", b"a"),
        (b"a", bytearray(b"a")),
        ([1, 2], (1, 2)),
        ([], ()),
        ([], {}),
        ("1", 1),
        (Decimal("1.0"), Decimal("1.00")),
        (Decimal("1"), 1),
        (["ab", "c"], ["a", "bc"]),
        ([[1], 2], [[1, 2]]),
        ([1, [2, 3]], [[1, 2], 3]),
        ({"a": "b"}, {"ab": ""}),
        ({"a": [1]}, {("a", 1)}),
    ],
)
def test_different_values_hash_differently(left: object, right: object) -> None:
    assert stable_hash(left) != stable_hash(right)


def test_equal_values_hash_alike() -> None:
    assert stable_hash([1, "a", (2.5, None)]) == stable_hash([1, "a", (2.5, None)])
    assert stable_hash(10**5000) == stable_hash(10**5000)  # no int-to-str digit limit
    assert stable_hash(10**5000) != stable_hash(10**5000 + 1)
    assert stable_hash(float("nan")) == stable_hash(float("nan"))


def test_datetimes_hash_by_instant_zone_and_awareness() -> None:
    paris = datetime(2024, 5, 6, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
    utc = paris.astimezone(UTC)
    fixed = paris.astimezone(timezone(timedelta(hours=2)))
    assert paris == utc == fixed
    assert len({stable_hash(paris), stable_hash(utc), stable_hash(fixed)}) == 3
    assert stable_hash(datetime(2024, 1, 1)) != stable_hash(datetime(2024, 1, 1, tzinfo=UTC))
    assert stable_hash(paris) == stable_hash(datetime(2024, 5, 6, 9, 0, tzinfo=ZoneInfo("Europe/Paris")))
    assert stable_hash(paris) != stable_hash(paris + timedelta(microseconds=1))


def test_paths_hash_by_flavour_and_text() -> None:
    assert stable_hash(PurePosixPath("a/b")) == stable_hash(PurePosixPath("a") / "b")
    assert stable_hash(PurePosixPath("a/b")) != stable_hash(PureWindowsPath("a/b"))
    assert stable_hash(PurePosixPath("a/b")) != stable_hash("a/b")
    if os.name == "posix":
        assert stable_hash(Path("a/b")) == stable_hash(PurePosixPath("a/b"))


class Mood(enum.Enum):
    HAPPY = 1
    SAD = 2


class Level(enum.IntEnum):
    LOW = 1


@dataclasses.dataclass
class Box:
    item: object
    count: int = 1


@dataclasses.dataclass
class Crate:
    item: object
    count: int = 1


class Pair(NamedTuple):
    a: int
    b: int


def test_enums_dataclasses_and_subclasses() -> None:
    assert stable_hash(Mood.HAPPY) == stable_hash(Mood(1))
    assert stable_hash(Mood.HAPPY) != stable_hash(Mood.SAD)
    assert stable_hash(Level.LOW) != stable_hash(1)
    assert stable_hash(Box([1, {2}])) == stable_hash(Box([1, {2}]))
    assert stable_hash(Box([1])) != stable_hash(Box([1], count=2))
    assert stable_hash(Box([1])) != stable_hash(Crate([1]))  # same fields, other class
    assert stable_hash(Pair(1, 2)) != stable_hash((1, 2))
    assert stable_hash(Pair(1, 2)) == stable_hash(Pair(1, 2))
    ordered = collections.OrderedDict([("a", 1)])
    assert stable_hash(ordered) != stable_hash({"a": 1})
    assert stable_hash(ordered) == stable_hash(collections.OrderedDict([("a", 1)]))


def test_reference_cycles_are_hashed_structurally() -> None:
    def make(tail: object) -> list[object]:
        cycle: list[object] = [1, tail]
        cycle.append(cycle)
        return cycle

    assert stable_hash(make("x")) == stable_hash(make("x"))
    assert stable_hash(make("x")) != stable_hash(make("y"))
    looped: dict[str, object] = {"k": 1}
    looped["self"] = looped
    assert stable_hash(looped) == stable_hash(looped)


def test_shared_references_are_not_cycles() -> None:
    shared = [1, 2]
    assert stable_hash([shared, shared]) == stable_hash([[1, 2], [1, 2]])


class Opaque:
    def __init__(self, value: int) -> None:
        self.value = value


def test_other_values_fall_back_to_their_pickle() -> None:
    assert stable_hash(Opaque(1)) == stable_hash(Opaque(1))
    assert stable_hash(Opaque(1)) != stable_hash(Opaque(2))
    assert stable_hash([Opaque(1)]) != stable_hash([Box(1)])


def test_unpicklable_values_raise_type_error_naming_the_type() -> None:
    with pytest.raises(TypeError, match="lock"):
        stable_hash({"a": threading.Lock()})


def test_hash_inputs_maps_names_to_digests() -> None:
    assert cache_validators.hash_inputs({"x": 1, "y": [2]}) == {"x": stable_hash(1), "y": stable_hash([2])}
    assert cache_validators.hash_inputs(None) == {}
    assert cache_validators.stable_hash is stable_hash
