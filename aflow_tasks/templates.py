"""Template tasks: fill a string template with upstream results and run context values.

As in Prefect 1's ``prefect.tasks.templates``, the values available to a template are the
current `aflow.context` values (``flow_name``, ``today``, ``parameters``, ``task_name``...,
see `aflow.context.to_dict`) overlaid by the keyword arguments of the call, so a call argument
hides a context value of the same name::

    from aflow import Flow, Parameter
    from aflow_tasks.templates import JinjaTemplate, StringFormatter

    greeting = StringFormatter(template="Hello {name}, today is {today} in {flow_name}")
    report = JinjaTemplate(template="{% for r in rows %}- {{ r }} {% endfor %}")

    with Flow("greet") as flow:
        name = Parameter("name")
        text = greeting(name=name)

`StringFormatter` uses `str.format`. `JinjaTemplate` needs the ``templates`` extra (``pip install
aflow-engine[templates]``) and renders with jinja2, with two choices that differ from Prefect 1's plain
``jinja2.Template``:

- **Sandboxed.** Templates render in a `jinja2.sandbox.SandboxedEnvironment`. A template can be
  passed at run time, from a `aflow.Parameter` or an upstream task, so it may come from outside
  the code; the sandbox stops such a template from reaching Python internals
  (``{{ ''.__class__.__mro__ }}``) while leaving ordinary templates (loops, filters, conditions,
  attribute and item access) working.
- **Strict undefined.** An undefined variable raises `jinja2.exceptions.UndefinedError` naming
  it (``'nme' is undefined``) instead of rendering as an empty string, so a typo fails the task
  rather than sending a message with a hole in it. Optional values stay easy:
  ``{{ x | default("none") }}`` and ``{% if x is defined %}`` work as usual.

Autoescaping is off (the output is text, not necessarily HTML) and a single trailing newline is
dropped, as with jinja2's defaults.

The names ``upstream_tasks``, ``mapped``, ``task_args`` and ``flow`` belong to task calls, so
they cannot be template variables given at the call; ``template`` is the template itself.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from aflow import Task, context, defaults_from_attrs

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

__all__ = ("JinjaTemplate", "StringFormatter")

_environment: SandboxedEnvironment | None = None


def _jinja2_sandbox() -> ModuleType:
    """Import jinja2's sandbox, or explain which extra provides it."""
    try:
        import jinja2.sandbox
    except ImportError as exc:
        raise ImportError("templates tasks need jinja2: pip install aflow-engine[templates]") from exc
    return jinja2.sandbox


def _jinja_environment() -> SandboxedEnvironment:
    """The shared sandboxed environment with strict undefined variables (made on first use)."""
    global _environment
    if _environment is None:
        sandbox = _jinja2_sandbox()
        import jinja2

        _environment = sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    return _environment


def _values(format_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The run context overlaid by the call's keyword arguments."""
    return {**context.to_dict(), **format_kwargs}


def _need_template(template: str | None, task: str) -> str:
    if template is None:
        raise ValueError(f"{task} needs a template: give it to {task}(template=...) or to the call, template=...")
    if not isinstance(template, str):
        raise TypeError(f"{task}: template must be a str, got {type(template).__name__}")
    return template


class StringFormatter(Task):
    """Format a `str.format` template with the call's keyword arguments and the run context.

    Example::

        from aflow import Flow
        from aflow_tasks.templates import StringFormatter

        msg = StringFormatter(name="message", template="{greeting}, {flow_name}! Today is {today}.")
        with Flow("formatting") as flow:
            text = msg(greeting="Hello")
        # state.result[text].result == "Hello, formatting! Today is 2024-05-01."

    Args:
        template: The default template; a template given at the call wins. Defaults to None.
        **kwargs: `Task` arguments (``name``, ``max_retries``...).
    """

    def __init__(self, template: str | None = None, **kwargs: Any) -> None:
        self.template = template
        super().__init__(**kwargs)

    @defaults_from_attrs("template")
    async def run(self, template: str | None = None, **format_kwargs: Any) -> str:
        """Return ``template.format(**values)``.

        Args:
            template: The template. Defaults to the task's ``template``.
            **format_kwargs: Values for the template's fields; they hide context values of the
                same name.

        Returns:
            The formatted string.

        Raises:
            ValueError: If there is no template, or a field is neither a call argument nor a
                context value (the message names it).
        """
        text = _need_template(template, "StringFormatter")
        values = _values(format_kwargs)
        try:
            return text.format(**values)
        except KeyError as exc:
            field = exc.args[0] if exc.args else "?"
            raise ValueError(
                f"StringFormatter: the template field {{{field}}} is neither a call argument nor a context "
                f"value; pass it to the call ({field}=...) or to the flow run's context"
            ) from exc


class JinjaTemplate(Task):
    """Render a jinja2 template with the call's keyword arguments and the run context.

    Rendering is sandboxed and undefined variables are errors (see the module docs).

    Example::

        from aflow import Flow
        from aflow_tasks.templates import JinjaTemplate

        message = "Hi {{ name }}! Welcome to {{ flow_name }}. Today is {{ today }}."
        msg_task = JinjaTemplate(name="message body", template=message)
        with Flow("string-template") as flow:
            output = msg_task(name="Marvin")
        # state.result[output].result == "Hi Marvin! Welcome to string-template. Today is 2024-05-01."

    Args:
        template: The default template source; a template given at the call wins. Defaults to
            None.
        **kwargs: `Task` arguments (``name``, ``max_retries``...).
    """

    def __init__(self, template: str | None = None, **kwargs: Any) -> None:
        self.template = template
        super().__init__(**kwargs)

    @defaults_from_attrs("template")
    async def run(self, template: str | None = None, **format_kwargs: Any) -> str:
        """Render ``template``.

        Args:
            template: The template source. Defaults to the task's ``template``.
            **format_kwargs: Template variables; they hide context values of the same name.

        Returns:
            The rendered string.

        Raises:
            ValueError: If there is no template.
            ImportError: If jinja2 is not installed.
            jinja2.exceptions.TemplateError: If the template has a syntax error, uses an undefined
                variable (``UndefinedError``) or does something the sandbox forbids
                (``SecurityError``).
        """
        source = _need_template(template, "JinjaTemplate")
        compiled = _jinja_environment().from_string(source)
        rendered: str = compiled.render(_values(format_kwargs))
        return rendered
