"""The flow-level hooks of a run: state handlers, the terminal state handler and ``on_failure``.

A hook's error fails the run with a message naming it; a signal it raises sets the flow's state,
as in Prefect 1; cancellation is re-raised.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import signals
from .._runtime._logging import engine_logger
from ..states import Failed, ReferenceStates, State, Success
from ._task_runner import expanded

if TYPE_CHECKING:
    from .._model._flow import Flow
    from .._model._task import Task

__all__ = ("final_state", "flow_state")

logger = engine_logger("flow_runner")


def _signalled(sig: signals.AflowSignal, current: State) -> State:
    """The flow state a signal raised in a flow hook sets.

    The signal's state, as in Prefect 1; when it carries no result of its own it keeps the
    task states of the run (``state.result[task]`` keeps working).
    """
    new = sig.state
    if (new.result is None or new.result is sig) and isinstance(current.result, dict):
        new = copy.copy(new)
        new.result = current.result
    logger.info("Flow hook raised %s: the flow run is %s", type(sig).__name__, type(new).__name__)
    return new


async def flow_state(flow: Flow, old: State, new: State) -> State:
    """Run the flow's state handlers on ``old -> new`` and return the state they leave."""
    for handler in flow.state_handlers:
        try:
            replaced = handler(flow, old, new)
            if asyncio.iscoroutine(replaced):
                replaced = await replaced
        except asyncio.CancelledError:
            raise
        except signals.AflowSignal as sig:  # a signal sets the flow's state (Prefect 1)
            return _signalled(sig, new)
        except Exception as exc:
            name = getattr(handler, "__qualname__", repr(handler))
            logger.error("Flow %r: state handler %s raised %r", flow.name, name, exc, exc_info=exc)
            # the task states stay available as the result when the run got that far
            result = new.result if isinstance(new.result, dict) else exc
            return Failed(f"Flow state handler {name} raised {exc!r}", result=result)
        if replaced is not None:
            new = replaced
    return new


async def final_state(flow: Flow, running: State, results: dict[Task, State]) -> State:
    """The run's final state: from its reference tasks, through the terminal, state and failure hooks."""
    reference = {t: results[t] for t in flow.reference_tasks()}
    ref_expanded = expanded(reference.values())
    if any(s.is_failed() for s in ref_expanded):
        state: State = Failed("Some reference tasks failed.", result=results)
    elif all(s.is_successful() for s in ref_expanded):
        state = Success("All reference tasks succeeded.", result=results)
    else:
        state = Success("No reference tasks failed.", result=results)
    terminal, on_failure = flow.terminal_state_handler, flow.on_failure
    if terminal is not None:
        # Prefect 1's argument: a set of states (mapped tasks' children), with by_task
        ref_states = ReferenceStates(ref_expanded, reference)
        state = await _call_flow_hook(flow, lambda: terminal(flow, state, ref_states), state)
    state = await flow_state(flow, running, state)  # the handlers see the state it leaves
    if on_failure is not None and state.is_failed():
        # its return value is ignored and its errors only logged; a signal sets the state
        state = await _call_flow_hook(flow, lambda: on_failure(flow, state), state, replaces=False)
    if state.result is None:
        state.result = results
    return state


async def _call_flow_hook(flow: Flow, call: Callable[[], Any], state: State, replaces: bool = True) -> State:
    try:
        replaced = call()
        if asyncio.iscoroutine(replaced):
            replaced = await replaced
    except asyncio.CancelledError:
        raise
    except signals.AflowSignal as sig:  # a signal sets the flow's state (Prefect 1)
        return _signalled(sig, state)
    except Exception as exc:
        logger.error("Flow %r: a flow hook raised %r", flow.name, exc, exc_info=exc)
        return Failed(f"Flow hook raised {exc!r}", result=exc) if replaces else state
    return replaced if replaces and isinstance(replaced, State) else state
