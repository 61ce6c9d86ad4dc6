"""aflow_tasks.kubernetes: configuration, CRUD tasks, pod logs and secrets against the fake API server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import aflow_tasks.kubernetes as k8s_tasks
from aflow import Flow, Secret, Task, defaults_from_attrs
from aflow.secrets import REDACTED, redact
from aflow.states import Failed, Success
from aflow_tasks.kubernetes import (
    CreateNamespacedJob,
    CreateNamespacedPod,
    CreateNamespacedService,
    DeleteNamespacedJob,
    KubernetesFail,
    KubernetesSecret,
    KubernetesSecretRef,
    ListNamespacedPod,
    ReadNamespacedJob,
    ReadNamespacedPod,
    ReadNamespacedPodLogs,
    ReadNamespacedService,
    ReplaceNamespacedJob,
    RunNamespacedJob,
    _client,
    clients,
)

from .conftest import TOKEN, kubeconfig
from .fake_api import FakeKube

GUARD = 30


def container(command: list[str] | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "main", "image": "busybox"}
    if command:
        c["command"] = command
    return c


def pod_template(command: list[str] | None = None) -> dict[str, Any]:
    return {"spec": {"restartPolicy": "Never", "containers": [container(command)]}}


BODIES: dict[str, dict[str, Any]] = {
    "Job": {"spec": {"template": pod_template(["true"])}},
    "Pod": {"spec": {"containers": [container()]}},  # no command: the kubelet leaves it alone
    "Deployment": {
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container()]}},
        }
    },
    "Service": {"spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
}
PLURAL = {"Job": "jobs", "Pod": "pods", "Deployment": "deployments", "Service": "services"}


def crud(verb: str, kind: str) -> Any:
    return getattr(k8s_tasks, f"{verb}Namespaced{kind}")


def name_arg(kind: str) -> str:
    return f"{kind.lower()}_name"


# -- packaging and defaults ------------------------------------------------------------------------


def test_importing_the_family_does_not_import_the_client() -> None:
    code = "import sys, aflow_tasks.kubernetes; print('kubernetes_asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_missing_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in ("kubernetes_asyncio", "kubernetes_asyncio.client", "kubernetes_asyncio.config"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(ImportError, match=r"pip install aflow-engine\[kubernetes\]"):
        await ReadNamespacedJob(job_name="x", kube_config={}).run()


def test_init_defaults_are_stored() -> None:
    t = DeleteNamespacedJob()
    assert (t.job_name, t.namespace, t.kube_kwargs, t.delete_option_kwargs) == (None, "default", None, None)
    assert (t.kube_config, t.kube_context, t.kubernetes_api_key) == (None, None, None)
    assert t.kubernetes_api_key_secret == "KUBERNETES_API_KEY"
    c = CreateNamespacedService(body={"a": 1}, namespace="ns", kube_kwargs={"pretty": "true"}, name="mk")
    assert (c.body, c.namespace, c.kube_kwargs, c.name) == ({"a": 1}, "ns", {"pretty": "true"}, "mk")
    r = RunNamespacedJob()
    assert (r.body, r.namespace, r.job_status_poll_interval, r.log_level) == (None, "default", 5.0, "info")
    assert (r.delete_job_after_completion, r.delete_job_after_failure, r.propagation_policy) == (
        True,
        False,
        "Foreground",
    )
    s = KubernetesSecret("s", "k")
    assert (s.secret_name, s.secret_key, s.namespace, s.cast, s.raise_if_missing) == ("s", "k", "default", None, False)
    logs = ReadNamespacedPodLogs()
    assert (logs.pod_name, logs.follow, logs.log_level, logs.on_log_entry) == (None, False, None, None)


def test_unknown_init_argument_and_bad_log_level_are_refused() -> None:
    with pytest.raises(TypeError):
        ReadNamespacedJob(pod_name="x")
    with pytest.raises(ValueError, match="log_level"):
        RunNamespacedJob(log_level="chatty")


def test_generated_classes_are_documented() -> None:
    for verb in ("Create", "Delete", "List", "Patch", "Read", "Replace"):
        for kind in ("Job", "Pod", "Deployment", "Service"):
            cls = crud(verb, kind)
            assert cls.__name__ == f"{verb}Namespaced{kind}"
            assert cls.__module__ == "aflow_tasks.kubernetes.crud"
            doc = cls.__doc__ or ""
            assert "Args:" in doc
            assert "namespace:" in doc
            assert "kube_kwargs:" in doc
            assert (name_arg(kind) in doc) == (verb not in ("Create", "List"))
            assert ("body:" in doc) == (verb in ("Create", "Patch", "Replace"))
            assert ("delete_option_kwargs" in doc) == (verb == "Delete")
            assert "Returns:" in (cls.run.__doc__ or "")


async def test_missing_required_values_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="needs job_name"):
        await ReadNamespacedJob(kube_config={}).run()
    with pytest.raises(ValueError, match="needs body"):
        await CreateNamespacedPod(kube_config={}).run()
    with pytest.raises(ValueError, match="needs body"):
        await RunNamespacedJob(kube_config={}).run()
    with pytest.raises(ValueError, match=r"metadata\.name or metadata\.generateName"):
        await RunNamespacedJob(body={"spec": {}}, kube_config={}).run()
    with pytest.raises(ValueError, match="needs pod_name"):
        await ReadNamespacedPodLogs().run()
    with pytest.raises(ValueError, match="needs secret_name"):
        await KubernetesSecret().run()
    with pytest.raises(ValueError, match="needs secret_key"):
        await KubernetesSecret("s").run()


# -- configuration -------------------------------------------------------------------------------------


async def test_no_configuration_found_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no Kubernetes configuration found"):
        await ReadNamespacedJob(job_name="x").run()


async def test_kubeconfig_file_given_by_path_and_by_kubeconfig_variable(
    fake: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kubeconfig.yaml"
    path.write_text(json.dumps(kubeconfig(fake.url)))
    fake.put("services", {"metadata": {"name": "svc"}, **BODIES["Service"]})
    read = await ReadNamespacedService(service_name="svc", kube_config=str(path)).run()
    assert read.metadata.name == "svc"
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{path}")
    read = await ReadNamespacedService(service_name="svc").run()
    assert read.spec.ports[0].port == 80


async def test_in_cluster_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("in-cluster-token")
    ca.write_text("not really a certificate")
    monkeypatch.setattr(_client, "IN_CLUSTER_TOKEN_FILE", str(token))
    monkeypatch.setattr(_client, "IN_CLUSTER_CA_FILE", str(ca))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    cfg = await _client.load_configuration(None, None, None)
    assert cfg.host == "https://10.0.0.1:443"
    assert cfg.api_key["BearerToken"] == "Bearer in-cluster-token"
    # an explicit configuration wins over the cluster's; an API key is added on top
    explicit = await _client.load_configuration(kubeconfig("http://127.0.0.1:1", token=None), None, "k3y-value")
    assert explicit.host == "http://127.0.0.1:1"
    assert explicit.api_key["BearerToken"] == "Bearer k3y-value"


async def test_invalid_context_is_a_clear_error(fake: FakeKube) -> None:
    with pytest.raises(ValueError, match="invalid Kubernetes configuration"):
        await ReadNamespacedJob(job_name="x", kube_config=kubeconfig(fake.url), kube_context="nope").run()


async def test_api_key_from_a_lazy_secret(fake: FakeKube) -> None:
    no_token = kubeconfig(fake.url, token=None)
    with Flow("k8s-token") as flow:
        t = ListNamespacedPod(kube_config=no_token, kubernetes_api_key=Secret("K8S_TOKEN"))()
    with anyio.fail_after(GUARD):
        state = await flow.run(context={"secrets": {"K8S_TOKEN": TOKEN}})
    assert isinstance(state, Success), state.result[t]
    assert state.result[t].result.items == []
    assert fake.requests[-1][2] == f"Bearer {TOKEN}"
    # without the key the fake refuses: the failure says so
    with pytest.raises(KubernetesFail, match=r"HTTP 401 Unauthorized") as info:
        await ListNamespacedPod(kube_config=no_token).run()
    assert info.value.status == 401


async def test_api_key_from_the_named_secret_in_the_environment(
    fake: FakeKube, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AFLOW__CONTEXT__SECRETS__KUBERNETES_API_KEY", TOKEN)
    result = await ListNamespacedPod(kube_config=kubeconfig(fake.url, token=None)).run()
    assert result.items == []
    assert redact(TOKEN) == REDACTED


async def test_a_flow_run_shares_one_client_per_configuration(fake: FakeKube) -> None:
    opened: list[Any] = []

    @asynccontextmanager
    async def spy(*args: Any) -> AsyncIterator[Any]:
        async with clients.opener(*args) as api:
            opened.append(api)
            yield api

    config = kubeconfig(fake.url)
    fake.put("services", {"metadata": {"name": "svc"}, **BODIES["Service"]})
    with Flow("k8s-shared") as flow:
        tasks = [ReadNamespacedService(service_name="svc", kube_config=config)() for _ in range(4)]
        listed = ListNamespacedPod(kube_config=config)()
    with anyio.fail_after(GUARD), clients.override(spy):
        state = await flow.run()
    assert isinstance(state, Success)
    assert all(state.result[t].result.metadata.name == "svc" for t in tasks)
    assert state.result[listed].result.items == []
    assert len(opened) == 1
    assert opened[0].rest_client.pool_manager.closed  # closed when the run ended


# -- CRUD of every kind, through both configurations --------------------------------------------------


@pytest.mark.parametrize("kind", ["Job", "Pod", "Deployment", "Service"])
async def test_crud_cycle(kind: str, conn: dict[str, Any], fake: FakeKube) -> None:
    name, key = f"{kind.lower()}-one", name_arg(kind)
    body = {"metadata": {"name": name, "labels": {"team": "a"}}, **BODIES[kind]}
    created = await crud("Create", kind)(body=body, **conn).run()
    assert created.metadata.name == name
    assert created.metadata.uid

    read = await crud("Read", kind)(**{key: name}, **conn).run()
    assert read.metadata.labels == {"team": "a"}

    listed = await crud("List", kind)(**conn).run()
    assert [item.metadata.name for item in listed.items if item.metadata.name == name] == [name]

    patched = await crud("Patch", kind)(**{key: name}, body={"metadata": {"labels": {"tier": "b"}}}, **conn).run()
    assert patched.metadata.labels == {"team": "a", "tier": "b"}

    new_body = {"metadata": {"name": name, "labels": {"replaced": "yes"}}, **BODIES[kind]}
    replaced = await crud("Replace", kind)(**{key: name}, body=new_body, **conn).run()
    assert replaced.metadata.labels == {"replaced": "yes"}
    assert fake.objects_of(PLURAL[kind])[name]["metadata"]["labels"] == {"replaced": "yes"}

    await crud("Delete", kind)(**{key: name}, **conn).run()
    assert name not in fake.objects_of(PLURAL[kind])
    with pytest.raises(KubernetesFail, match=r"Not found \(404\)") as info:
        await crud("Read", kind)(**{key: name}, **conn).run()
    assert info.value.status == 404
    assert info.value.reason == "NotFound"


async def test_create_twice_is_a_named_conflict(conn: dict[str, Any]) -> None:
    task = CreateNamespacedService(body={"metadata": {"name": "dup"}, **BODIES["Service"]}, **conn)
    await task.run()
    with pytest.raises(KubernetesFail, match=r"Conflict \(409\), reason AlreadyExists.*already exists") as info:
        await task.run()
    assert info.value.status == 409


async def test_replace_with_a_stale_resource_version_is_a_conflict(fake: FakeKube) -> None:
    config = kubeconfig(fake.url)
    created = await CreateNamespacedJob(body={"metadata": {"name": "rv"}, **BODIES["Job"]}, kube_config=config).run()
    stale = {"metadata": {"name": "rv", "resourceVersion": "1" + created.metadata.resource_version}, **BODIES["Job"]}
    with pytest.raises(KubernetesFail, match=r"Conflict \(409\).*has been modified"):
        await ReplaceNamespacedJob(job_name="rv", body=stale, kube_config=config).run()


async def test_run_body_is_deep_merged_into_the_init_body(fake: FakeKube) -> None:
    init_body = {"metadata": {"name": "merged", "labels": {"a": "1"}}, **BODIES["Job"]}
    task = CreateNamespacedJob(body=init_body, kube_config=kubeconfig(fake.url))
    created = await task.run(body={"metadata": {"labels": {"b": "2"}}})
    assert created.metadata.name == "merged"
    assert created.metadata.labels == {"a": "1", "b": "2"}
    assert created.spec.template.spec.containers[0].command == ["true"]
    assert init_body["metadata"]["labels"] == {"a": "1"}  # the init body is not modified


async def test_a_call_value_overrides_the_init_value(fake: FakeKube) -> None:
    fake.put("services", {"metadata": {"name": "svc"}, **BODIES["Service"]}, namespace="other")
    task = ReadNamespacedService(service_name="svc", namespace="default", kube_config=kubeconfig(fake.url))
    with pytest.raises(KubernetesFail, match="404"):
        await task.run()
    assert (await task.run(namespace="other")).metadata.namespace == "other"
    with Flow("k8s-override") as flow:
        t = task(namespace="other")
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert state.result[t].result.metadata.namespace == "other"


async def test_kube_kwargs_reach_the_api(fake: FakeKube) -> None:
    for name, team in (("p1", "a"), ("p2", "b")):
        fake.put("pods", {"metadata": {"name": name, "labels": {"team": team}}, **BODIES["Pod"]})
    task = ListNamespacedPod(kube_kwargs={"label_selector": "team=a"}, kube_config=kubeconfig(fake.url))
    assert [p.metadata.name for p in (await task.run()).items] == ["p1"]
    assert [p.metadata.name for p in (await task.run(kube_kwargs={"label_selector": "team=b"})).items] == ["p2"]


async def test_delete_option_kwargs_set_the_propagation_policy(fake: FakeKube) -> None:
    config = kubeconfig(fake.url)
    for name in ("orphaning", "foreground"):
        await CreateNamespacedJob(
            body={"metadata": {"name": name}, "spec": {"template": pod_template(["sleep", "60"])}}, kube_config=config
        ).run()
    pods = await fake.wait_for(lambda: len(fake.pids) == 2 and dict(fake.pids))
    await DeleteNamespacedJob(job_name="orphaning", kube_config=config).run()
    await DeleteNamespacedJob(
        job_name="foreground", delete_option_kwargs={"propagation_policy": "Foreground"}, kube_config=config
    ).run()
    left = fake.objects_of("pods")
    assert [p for p in left if p.startswith("orphaning-")]
    assert not [p for p in left if p.startswith("foreground-")]
    assert [p for p in pods if p.startswith("foreground-")] == fake.killed


# -- pod logs --------------------------------------------------------------------------------------------


async def test_read_pod_logs_follow_and_snapshot(fake: FakeKube, lines: Any) -> None:
    config = kubeconfig(fake.url)
    script = "echo one; echo 42 >&2; sleep 0.2; printf 'two'"
    await CreateNamespacedPod(
        body={"metadata": {"name": "talker"}, "spec": {"containers": [container(["sh", "-c", script])]}},
        kube_config=config,
    ).run()
    await fake.wait_for(lambda: "talker" in fake.pids)
    seen: list[str] = []
    follow = ReadNamespacedPodLogs(
        pod_name="talker", follow=True, on_log_entry=seen.append, log_level="info", kube_config=config
    )
    with anyio.fail_after(GUARD):
        text = await follow.run()
    assert text == "one\n42\ntwo\n"
    assert seen == ["one", "42", "two"]
    assert "talker: 42" in lines.messages
    # once the container ended, a plain read gives the same text (a log that looks like JSON stays text)
    assert await ReadNamespacedPodLogs(pod_name="talker", kube_config=config).run() == "one\n42\ntwo\n"
    tail = ReadNamespacedPodLogs(pod_name="talker", kube_kwargs={"tail_lines": 1}, kube_config=config)
    assert await tail.run() == "two\n"


async def test_read_logs_of_a_missing_pod_fails_with_404(fake: FakeKube) -> None:
    with pytest.raises(KubernetesFail, match=r"reading the logs of pod 'ghost'.*Not found \(404\)"):
        await ReadNamespacedPodLogs(pod_name="ghost", kube_config=kubeconfig(fake.url)).run()


async def test_read_pod_in_a_flow(conn: dict[str, Any], fake: FakeKube) -> None:
    fake.put("pods", {"metadata": {"name": "p"}, **BODIES["Pod"]})
    with Flow("k8s-read-pod") as flow:
        t = ReadNamespacedPod(pod_name="p", **conn)()
        missing = ReadNamespacedPod(pod_name="absent", **conn)()
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert isinstance(state.result[t], Success)
    assert state.result[t].result.spec.containers[0].name == "main"
    assert isinstance(state.result[missing], Failed)
    assert "Not found (404)" in (state.result[missing].message or "")


# -- secrets -------------------------------------------------------------------------------------------------


@pytest.fixture
def stored_secret(fake: FakeKube) -> dict[str, Any]:
    fake.put("secrets", {"metadata": {"name": "creds"}, "stringData": {"password": "s3cr3t-pass", "conf": '{"a": 1}'}})
    return kubeconfig(fake.url)


async def test_kubernetes_secret_task(stored_secret: dict[str, Any]) -> None:
    with Flow("k8s-secret") as flow:
        plain = KubernetesSecret("creds", "password", kube_config=stored_secret)()
        cast = KubernetesSecret("creds", "conf", cast=json.loads, kube_config=stored_secret)()
        absent = KubernetesSecret("creds", "nope", kube_config=stored_secret)()
        strict = KubernetesSecret("creds", "nope", raise_if_missing=True, kube_config=stored_secret)()
        missing = KubernetesSecret("no-such", "password", kube_config=stored_secret)()
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert state.result[plain].result == "s3cr3t-pass"
    assert redact("pw=s3cr3t-pass") == f"pw={REDACTED}"
    assert state.result[cast].result == {"a": 1}
    assert state.result[absent].result is None
    assert isinstance(state.result[strict], Failed)
    assert "has no key 'nope' (keys: conf, password)" in (state.result[strict].message or "")
    assert isinstance(state.result[missing], Failed)
    assert 'Not found (404), reason NotFound: secrets "no-such" not found' in (state.result[missing].message or "")


class Echo(Task):
    def __init__(self, value: Any = None, **kwargs: Any) -> None:
        self.value = value
        super().__init__(**kwargs)

    @defaults_from_attrs("value")
    async def run(self, value: Any = None) -> Any:
        return value


async def test_kubernetes_secret_ref_is_a_lazy_default(stored_secret: dict[str, Any]) -> None:
    ref = KubernetesSecretRef("creds", "password", kube_config=stored_secret)
    assert "s3cr3t" not in repr(ref)
    with Flow("k8s-secret-ref") as flow:
        t = Echo(value=ref)()
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert state.result[t].result == "s3cr3t-pass"
    with pytest.raises(TypeError, match="unexpected"):
        KubernetesSecretRef("creds", "password", kube_confg={})
