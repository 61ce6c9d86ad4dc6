from __future__ import annotations

import functools
import sys
from datetime import UTC, datetime

import anyio
import jinja2
import jinja2.exceptions
import pytest

from aflow import Flow, Parameter, context, task
from aflow.states import Failed
from aflow_tasks import templates
from aflow_tasks.templates import JinjaTemplate, StringFormatter


def test_init_defaults_are_stored():
    assert StringFormatter().template is None
    assert JinjaTemplate().template is None
    s = StringFormatter(template="{x}", name="fmt", max_retries=1)
    assert (s.template, s.name, s.max_retries) == ("{x}", "fmt", 1)
    j = JinjaTemplate(template="{{ x }}", name="message body")
    assert (j.template, j.name) == ("{{ x }}", "message body")


@pytest.mark.parametrize("cls", [StringFormatter, JinjaTemplate])
async def test_missing_template_is_a_clear_value_error(cls):
    with pytest.raises(ValueError, match=rf"{cls.__name__} needs a template: give it to {cls.__name__}\(template="):
        await cls().run(x=1)
    with pytest.raises(TypeError, match="template must be a str, got int"):
        await cls(template=3).run()


async def test_string_formatter_success_and_override():
    fmt = StringFormatter(template="{greeting}, {name}!")
    assert await fmt.run(greeting="Hello", name="Ada") == "Hello, Ada!"
    assert await fmt.run(template="{name} says {greeting}", greeting="hi", name="Bob") == "Bob says hi"
    assert await fmt.run(template="", greeting="unused") == ""
    assert await StringFormatter().run(template="{n:03d} {items[1]}", n=7, items=["a", "b"]) == "007 b"


async def test_jinja_template_success_and_override():
    tpl = JinjaTemplate(template="Hi {{ name }}!{% for i in items %} {{ i | upper }}{% endfor %}")
    assert await tpl.run(name="Marvin", items=["a", "b"]) == "Hi Marvin! A B"
    assert await tpl.run(template="{{ n * 2 }}", n=21) == "42"
    # jinja2's defaults otherwise: no autoescaping, one trailing newline dropped
    assert await tpl.run(template="<{{ tag }}>\n", tag="<b>") == "<<b>>"


async def test_call_values_hide_context_values():
    with context.temporary(flow_name="ctx-flow", who="ctx"):
        assert await StringFormatter(template="{flow_name}/{who}").run() == "ctx-flow/ctx"
        assert await StringFormatter(template="{flow_name}/{who}").run(who="call") == "ctx-flow/call"
        assert await JinjaTemplate(template="{{ flow_name }}/{{ who }}").run(who="call") == "ctx-flow/call"


async def test_string_formatter_unknown_field():
    with pytest.raises(ValueError, match=r"the template field \{nme\} is neither a call argument nor a context value"):
        await StringFormatter(template="Hello {nme}").run(name="Ada")


async def test_jinja_undefined_variable_is_an_error():
    with pytest.raises(jinja2.UndefinedError, match="'nme' is undefined"):
        await JinjaTemplate(template="Hello {{ nme }}").run(name="Ada")
    # optional values stay easy with StrictUndefined
    tpl = JinjaTemplate(template="{{ x | default('none') }}{% if y is defined %}/{{ y }}{% endif %}")
    assert await tpl.run() == "none"
    assert await tpl.run(x=1, y=2) == "1/2"


async def test_jinja_syntax_error():
    with pytest.raises(jinja2.TemplateSyntaxError):
        await JinjaTemplate(template="{% for %}").run()


async def test_jinja_is_sandboxed():
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(jinja2.exceptions.SecurityError):
        await JinjaTemplate(template=evil).run()
    with pytest.raises(jinja2.exceptions.SecurityError):
        await JinjaTemplate(template="{{ f.__globals__ }}").run(f=test_jinja_is_sandboxed)


def test_missing_jinja2_is_explained(monkeypatch):
    monkeypatch.setattr(templates, "_environment", None)
    monkeypatch.setitem(sys.modules, "jinja2", None)
    monkeypatch.setitem(sys.modules, "jinja2.sandbox", None)
    with pytest.raises(ImportError, match=r"templates tasks need jinja2: pip install aflow-engine\[templates\]"):
        anyio.run(JinjaTemplate(template="x").run)
    # StringFormatter needs no extra
    assert anyio.run(functools.partial(StringFormatter(template="{x}").run, x=1)) == "1"


async def test_templates_in_a_flow_with_upstream_and_context_values():
    @task
    async def count_rows() -> int:
        return 3

    @task
    async def rows() -> list[str]:
        return ["alpha", "beta"]

    fmt = StringFormatter(name="subject", template="[{flow_name}] {n} rows for {who} on {today} ({team})")
    body = JinjaTemplate(
        name="body",
        template=(
            "Report {{ flow_name }} {{ today }} for {{ parameters.who }}:"
            "{% for r in rows %} {{ loop.index }}.{{ r }}{% endfor %}"
        ),
    )
    with Flow("daily-report") as flow:
        who = Parameter("who")
        subject = fmt(n=count_rows(), who=who)
        text = body(rows=rows())
        shouted = StringFormatter(template="{x!r}")(x=text)
        custom = JinjaTemplate()(template=Parameter("tpl"), n=count_rows())
    state = await flow.run(who="ops", tpl="{{ n }} in {{ task_name }}", context={"team": "data"})
    today = datetime.now(UTC).strftime("%Y-%m-%d")  # the run's date (UTC), as context gives it
    assert state.is_successful(), state.result
    assert state.result[subject].result == f"[daily-report] 3 rows for ops on {today} (data)"
    assert state.result[text].result == f"Report daily-report {today} for ops: 1.alpha 2.beta"
    assert state.result[shouted].result == repr(state.result[text].result)
    assert state.result[custom].result == "3 in JinjaTemplate"


async def test_template_failure_in_a_flow():
    with Flow("broken") as flow:
        out = JinjaTemplate(template="{{ missing }}")()
        after = StringFormatter(template="{x}")(x=out)
    state = await flow.run()
    assert state.is_failed()
    failed = state.result[out]
    assert type(failed) is Failed
    assert isinstance(failed.result, jinja2.UndefinedError)
    assert state.result[after].is_failed()
