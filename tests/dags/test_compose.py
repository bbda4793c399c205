"""docker-compose.yml is consistent: no Docker engine runs here, so the file is checked as data (issue 5).

Variables are interpolated as Compose does (`${VAR}`, `${VAR:-default}`, `${VAR:?error}`, `$$`), with the
values of deploy/compose.env.example filled in.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.dags.conftest import DEPLOY, REPO

COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / "compose.env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker", "airflow-init"}
VARIABLE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}|(?P<dollar>\$))")


def interpolate(text: str, env: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        if match["dollar"]:
            return "$"
        name, op, arg = match["braced"], match["op"], match["arg"]
        value = env.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":?", "?") and unset:
            raise KeyError(f"{name}: {arg}")
        if op in (":-", "-") and unset:
            return arg
        if value is None:
            raise KeyError(f"{name} is used without a default and is not in {ENV_EXAMPLE.name}")
        return value

    return VARIABLE.sub(one, text)


def env_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return {k.strip(): v.strip() for k, v in pairs}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    filled = {k: v or f"test-{k.lower()}" for k, v in env_example().items()}
    parsed = yaml.safe_load(interpolate(COMPOSE.read_text(), filled))
    assert isinstance(parsed, dict)
    return parsed


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    return dict(e.split("=", 1) for e in env) if isinstance(env, list) else {k: str(v) for k, v in env.items()}


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """target → (source, mode) of every volume of a service."""
    out = {}
    for spec in service.get("volumes", []):
        source, target, *mode = spec.split(":")
        out[target] = (source, mode[0] if mode else "rw")
    return out


def test_the_file_parses_and_holds_the_services_of_the_official_compose_file(compose: dict[str, Any]) -> None:
    assert AIRFLOW_SERVICES | {"postgres", "redis"} <= set(services(compose))
    for name, svc in services(compose).items():
        assert "image" in svc or "build" in svc, name


def test_every_required_variable_is_in_the_env_example_and_every_example_variable_is_used() -> None:
    text = COMPOSE.read_text()
    used = {m["braced"] for m in VARIABLE.finditer(text) if m["braced"]}
    required = {m["braced"] for m in VARIABLE.finditer(text) if m["braced"] and m["op"] in (None, ":?", "?")}
    example = env_example()
    assert required <= set(example)
    assert set(example) <= used
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):  # nothing starts without the secrets
        interpolate(text, {})


def test_dependencies_name_defined_services_and_have_no_cycle(compose: dict[str, Any]) -> None:
    graph = {name: set(svc.get("depends_on", {})) for name, svc in services(compose).items()}
    for name, deps in graph.items():
        assert deps <= set(graph), f"{name} depends on {deps - set(graph)}"
    done: set[str] = set()
    while len(done) < len(graph):
        ready = {n for n, deps in graph.items() if n not in done and deps <= done}
        assert ready, f"dependency cycle among {set(graph) - done}"
        done |= ready
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert graph[name] >= {"postgres", "redis", "airflow-init"}, name


def test_named_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = {source for svc in services(compose).values() for source, _ in mounts(svc).values()
            if not source.startswith((".", "/"))}
    assert used == declared


def test_airflow_services_share_one_image_metadata_db_broker_and_secrets(compose: dict[str, Any]) -> None:
    svcs = services(compose)
    airflow = {name: svcs[name] for name in AIRFLOW_SERVICES}
    assert len({svc["image"] for svc in airflow.values()}) == 1
    assert svcs["trialpipe"]["image"] == svcs["airflow-worker"]["image"]
    keys = ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL",
            "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL")
    for key in keys:
        assert len({env_of(svc).get(key) for svc in airflow.values()}) == 1, key
    env = env_of(svcs["airflow-worker"])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    db = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert db.scheme.startswith("postgresql") and db.hostname == "postgres"
    assert db.password == env_of(svcs["postgres"])["POSTGRES_PASSWORD"]
    assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
    assert urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).hostname == "airflow-apiserver"
    assert "8080" in svcs["airflow-apiserver"]["ports"][0].split(":")


def test_the_ui_is_published_on_loopback_only_by_default(compose: dict[str, Any]) -> None:
    for name, svc in services(compose).items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), name


def test_workers_mount_the_study_the_landing_zone_read_only_and_the_shared_warehouse(compose: dict[str, Any]) -> None:
    svcs = services(compose)
    for name in ("airflow-worker", "trialpipe"):
        env = {**dockerfile_env(), **env_of(svcs["airflow-worker"])}
        got = mounts(svcs[name])
        assert got[env["TRIALPIPE_WAREHOUSE"]] == ("trialpipe-warehouse", "rw"), name
        assert got[env["TRIALPIPE_LANDING"]][1] == "ro", name
        assert got[env["TRIALPIPE_STUDY"]][1] == "ro", name
    # the trialpipe command's defaults (study.toml, landing/, warehouse/) resolve to the same paths
    assert svcs["trialpipe"]["working_dir"] == str(Path(dockerfile_env()["TRIALPIPE_WAREHOUSE"]).parent)
    assert mounts(svcs["airflow-init"])["/opt/trialpipe/warehouse"][0] == "trialpipe-warehouse"
    # nothing but the workers (and the command-line tool) touches the trial data
    for name in set(svcs) - {"airflow-worker", "trialpipe", "airflow-init"}:
        assert not any(t.startswith("/opt/trialpipe") for t in mounts(svcs[name])), name


def dockerfile_env() -> dict[str, str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.startswith("ENV ")]
    return dict(pair.split("=", 1) for pair in line.split()[1:])


def test_the_image_builds_from_files_that_exist_and_carries_the_pool(compose: dict[str, Any]) -> None:
    build = services(compose)["airflow-worker"]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    copies = [ln.split()[1:] for ln in DOCKERFILE.read_text().splitlines() if ln.startswith("COPY ")]
    sources = [s for args in copies for s in args[:-1] if not s.startswith("--")]
    assert sources and all((context / s).exists() for s in sources), sources
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert all(f"!{s}" in ignore or f"!{s}/" in ignore for s in sources), "the build context leaves out a COPY"
    assert any(args[-1] == "/opt/trialpipe/pools.json" and args[-2] == "deploy/pools.json" for args in copies)
    assert "airflow pools import /opt/trialpipe/pools.json" in services(compose)["airflow-init"]["command"][-1]
    assert any(args[-1] == "/opt/airflow/dags" and args[-2] == "dags" for args in copies)


def test_compose_runs_what_the_celery_test_runs(compose: dict[str, Any]) -> None:
    """The executor settings, commands, pool and variables of tests/dags/test_celery.py are the compose file's."""
    from pipeline.notify import ENV_VARS
    from tests.dags import celery_cluster as cluster

    svcs = services(compose)
    for name, command in cluster.COMMANDS.items():  # the test runs each of these, with loopback-only flags
        assert svcs[name]["command"] == command, name
    tested = cluster.cluster_env(Path("/home"), 8080, cluster.Postgres(5432, Path("/pg"), []), "redis://r:6379/0")
    worker = env_of(svcs["airflow-worker"])
    airflow_keys = {k for k in worker if k.startswith("AIRFLOW__")}
    assert airflow_keys == set(tested) - cluster.TEST_ONLY  # the same settings, no more, no fewer
    for name in AIRFLOW_SERVICES - {"airflow-worker", "airflow-init"}:
        assert {k for k in env_of(svcs[name]) if k.startswith("AIRFLOW__")} == airflow_keys, name
    for key, value in cluster.SAME_VALUES.items():
        assert worker[key] == tested[key] == value, key
    assert set(cluster.DIFFERENT) <= airflow_keys
    urls = ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__CELERY__BROKER_URL")
    for key in urls:
        ours, theirs = urlsplit(tested[key]), urlsplit(worker[key])
        assert (ours.scheme, ours.path) == (theirs.scheme, theirs.path), key  # same driver, database and db index
    assert urlsplit(tested["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).path == \
        urlsplit(worker["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).path
    # the trialpipe variables: the study's paths (the image's ENV), red-flag mail, the staging threads
    trialpipe = {k for k in worker if k.startswith("TRIALPIPE_")}
    assert trialpipe == {"TRIALPIPE_STUDY", "TRIALPIPE_LANDING", "TRIALPIPE_WAREHOUSE", *ENV_VARS, *cluster.WORKER_ENV}
    # the pool the test installs is the one the image carries
    assert cluster.POOLS == DEPLOY / "pools.json"
    copies = [ln.split()[-2:] for ln in DOCKERFILE.read_text().splitlines() if ln.startswith("COPY ")]
    assert ["deploy/pools.json", "/opt/trialpipe/pools.json"] in copies
