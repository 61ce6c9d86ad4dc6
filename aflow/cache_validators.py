"""Cache validators: may a task use a cached result instead of running again?

A validator is called as ``validator(state, inputs, parameters)``, as in Prefect 1: ``state`` is
the candidate `aflow.states.Cached` state, ``inputs`` the task's inputs for this run (name to
value) and ``parameters`` the flow run's parameters. It returns True to use the cached result.

Every validator except `never_use` first checks expiry, as `duration_only` does: a state whose
``cached_result_expiration`` has passed is never valid. "Now" is the flow run's clock
(``flow.run(clock=FakeClock())`` makes expiry testable without sleeping), or the system clock
outside a run.

Inputs are compared through `hash_inputs` (`stable_hash` of each value), so a cached state stores
hash strings rather than the values themselves and stays valid across processes. Parameters are
compared by equality, as Prefect does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeAlias

from ._persist._hashing import stable_hash as stable_hash
from ._runtime._run_context import flow_run_var
from .states import Cached

__all__ = (
    "CacheValidator",
    "all_inputs",
    "all_parameters",
    "duration_only",
    "hash_inputs",
    "never_use",
    "partial_inputs_only",
    "partial_parameters_only",
    "stable_hash",
)

stable_hash.__module__ = __name__

CacheValidator: TypeAlias = Callable[[Cached, Mapping[str, Any] | None, Mapping[str, Any] | None], bool]
"""The type of a cache validator: ``(state, inputs, parameters) -> bool``."""


def hash_inputs(inputs: Mapping[str, Any] | None) -> dict[str, str]:
    """Return ``{name: stable_hash(value)}``: what a `Cached` state stores as ``cached_inputs``.

    Args:
        inputs: A task's inputs, name to value (None counts as no inputs).

    Returns:
        A new dict of hex digests, comparable across processes.

    Raises:
        TypeError: An input cannot be digested (see `stable_hash`).
    """
    return {name: stable_hash(value) for name, value in (inputs or {}).items()}


def _now() -> datetime:
    run = flow_run_var.get()
    return run.clock.now() if run is not None else datetime.now(UTC)


def _not_expired(state: Cached) -> bool:
    expiration = state.cached_result_expiration
    if expiration is None:
        return True
    if expiration.tzinfo is None:  # naive: taken as UTC, rather than failing the comparison
        expiration = expiration.replace(tzinfo=UTC)
    return expiration > _now()


def never_use(state: Cached, inputs: Mapping[str, Any] | None, parameters: Mapping[str, Any] | None) -> bool:
    """Never use the cache: the task always runs.

    Args:
        state: The candidate cached state.
        inputs: The task's inputs for this run.
        parameters: The flow run's parameters.

    Returns:
        False.
    """
    return False


def duration_only(state: Cached, inputs: Mapping[str, Any] | None, parameters: Mapping[str, Any] | None) -> bool:
    """Use the cache until it expires, whatever the inputs and parameters.

    Args:
        state: The candidate cached state.
        inputs: The task's inputs for this run (ignored).
        parameters: The flow run's parameters (ignored).

    Returns:
        True if ``state.cached_result_expiration`` is None or later than now.
    """
    return _not_expired(state)


def all_inputs(state: Cached, inputs: Mapping[str, Any] | None, parameters: Mapping[str, Any] | None) -> bool:
    """Use the cache while it has not expired and every input is the same as when it was cached.

    Args:
        state: The candidate cached state.
        inputs: The task's inputs for this run.
        parameters: The flow run's parameters (ignored).

    Returns:
        True if not expired and `hash_inputs` of ``inputs`` equals ``state.cached_inputs`` (None
        counting as no inputs).
    """
    return _not_expired(state) and (state.cached_inputs or {}) == hash_inputs(inputs)


def all_parameters(state: Cached, inputs: Mapping[str, Any] | None, parameters: Mapping[str, Any] | None) -> bool:
    """Use the cache while it has not expired and the flow parameters equal the cached ones.

    Args:
        state: The candidate cached state.
        inputs: The task's inputs for this run (ignored).
        parameters: The flow run's parameters.

    Returns:
        True if not expired and ``parameters == state.cached_parameters`` (None counting as no
        parameters).
    """
    return _not_expired(state) and dict(state.cached_parameters or {}) == dict(parameters or {})


def _only(values: Mapping[str, Any] | None, keys: frozenset[str]) -> dict[str, Any]:
    return {key: value for key, value in (values or {}).items() if key in keys}


def partial_inputs_only(validate_on: Iterable[str] | None = None) -> CacheValidator:
    """Build a validator that compares only the inputs named in ``validate_on``.

    An input named in ``validate_on`` must be present in both or absent from both, with the same
    `stable_hash`; the other inputs are ignored.

    Args:
        validate_on: The input names to compare; None compares none (expiry only, as in Prefect).

    Returns:
        A validator ``(state, inputs, parameters) -> bool``.
    """
    keys = None if validate_on is None else _names(validate_on, "validate_on")

    def _partial_inputs_only(
        state: Cached, inputs: Mapping[str, Any] | None, parameters: Mapping[str, Any] | None
    ) -> bool:
        if not _not_expired(state):
            return False
        if keys is None:
            return True
        return _only(state.cached_inputs, keys) == hash_inputs(_only(inputs, keys))

    return _partial_inputs_only


def partial_parameters_only(validate_on: Iterable[str] | None = None) -> CacheValidator:
    """Build a validator that compares only the flow parameters named in ``validate_on``.

    A parameter named in ``validate_on`` must be present in both or absent from both, with equal
    values; the other parameters are ignored.

    Args:
        validate_on: The parameter names to compare; None compares none (expiry only, as in Prefect).

    Returns:
        A validator ``(state, inputs, parameters) -> bool``.
    """
    keys = None if validate_on is None else _names(validate_on, "validate_on")

    def _partial_parameters_only(
        state: Cached, inputs: Mapping[str, Any] | None, parameters: Mapping[str, Any] | None
    ) -> bool:
        if not _not_expired(state):
            return False
        if keys is None:
            return True
        return _only(state.cached_parameters, keys) == _only(parameters, keys)

    return _partial_parameters_only


def _names(validate_on: Iterable[str], argument: str) -> frozenset[str]:
    if isinstance(validate_on, str):  # "ab" would silently mean {"a", "b"}
        raise TypeError(f"{argument} must be a list of names, not the string {validate_on!r}")
    names = frozenset(validate_on)
    bad = [name for name in names if not isinstance(name, str)]
    if bad:
        raise TypeError(f"{argument} must hold names (str), got {bad!r}")
    return names
