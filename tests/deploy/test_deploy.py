"""The deployment files under deploy/: each parses, validates, and agrees with the code and the rest.

What "agrees" means here: the commands they run are accepted by the real ``cable-ingest`` argument
parser, the environments they set are accepted by ``Settings.from_env``, the sinks files by
``load_config``, the grace periods outlast the task hard limit from ``celery_config``, and every
PromQL expression parses and names only the metrics of the contract below.
"""

from __future__ import annotations

import argparse
import configparser
import itertools
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from datetime import timedelta
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate.utils as k8s  # type: ignore[import-untyped]  # no type hints shipped
import promql_parser
import pytest
import yaml
from sqlalchemy.engine import make_url

from worker.cli import build_parser
from worker.queue.app import INTAKE_QUEUE, celery_config
from worker.routing.config import DEFAULT as DEFAULT_CONFIG
from worker.routing.config import load_config
from worker.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
SYSTEMD_DIR = DEPLOY / "systemd"
K8S_DIR = DEPLOY / "kubernetes"
ALERTS = COMPOSE_DIR / "prometheus" / "alerts.yml"
DASHBOARD = COMPOSE_DIR / "grafana" / "dashboards" / "cable-ingest.json"
VENV_BIN = "/opt/cable-ingest/.venv/bin/cable-ingest"

# --- the metrics contract: every cable_ingest_* name a dashboard or an alert may use ------------
COUNTERS: dict[str, frozenset[str]] = {
    "cable_ingest_cables_received_total": frozenset(),
    "cable_ingest_cables_parsed_total": frozenset(),
    "cable_ingest_cables_stored_total": frozenset({"sink"}),
    "cable_ingest_dead_letters_total": frozenset({"stage"}),
    "cable_ingest_notifications_delivered_total": frozenset({"sink"}),
    "cable_ingest_notifications_withheld_total": frozenset({"sink"}),
    "cable_ingest_redeliveries_total": frozenset({"task"}),
}
HISTOGRAMS: dict[str, frozenset[str]] = {
    "cable_ingest_stage_duration_seconds": frozenset({"stage"}),
}
GAUGES: dict[str, frozenset[str]] = {
    "cable_ingest_queue_depth": frozenset({"queue"}),
    "cable_ingest_queue_oldest_age_seconds": frozenset({"queue"}),
    "cable_ingest_queue_unacked": frozenset({"queue"}),
    "cable_ingest_queue_unacked_lost": frozenset({"queue"}),
    "cable_ingest_workers_online": frozenset(),
    "cable_ingest_dead_letters_stored": frozenset({"stage"}),
    "cable_ingest_last_delivery_timestamp_seconds": frozenset({"sink"}),
}
TARGET_LABELS = frozenset({"job", "instance"})  # what Prometheus adds to every scraped series


def _series() -> dict[str, frozenset[str]]:
    series = {**COUNTERS, **GAUGES}
    for name, labels in HISTOGRAMS.items():
        series[f"{name}_bucket"] = labels | {"le"}
        series[f"{name}_sum"] = labels
        series[f"{name}_count"] = labels
    return series


SERIES = _series()
KNOWN_LABELS = frozenset().union(*SERIES.values(), TARGET_LABELS)

# subcommands the deploy files name that the CLI does not have yet (being written elsewhere)
PENDING_SUBCOMMANDS = frozenset({"status"})
# placeholders in documented commands, and what stands in for them when parsing
PLACEHOLDERS = {
    "ID": "dl-0b8f6a52-parse",
    "ISO-TIME": "2024-05-01T00:00:00Z",
    "NAME": "storage",
    "STAGE": "parse",
    "N": "4",
    "PATH": "cables",
}
_INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
)
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:]*:(?P<password>[^@/\s]+)@")
_SECRET_KEY = re.compile(r"(?:PASSWORD|SECRET|TOKEN|(?:^|_)AUTH)$")
_PLACEHOLDER_PASSWORDS = frozenset({"INTERPOLATED", "CHANGE-ME", "PASSWORD", "***"})


# --- loaders -------------------------------------------------------------------------------------
def _files(*suffixes: str) -> list[Path]:
    return sorted(
        path
        for path in DEPLOY.rglob("*")
        if path.is_file() and path.name.endswith(suffixes) and "__pycache__" not in path.parts
    )


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@cache
def _yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def _yaml(path: Path) -> Any:
    (document,) = _yaml_documents(path)
    return document


@cache
def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = _yaml(COMPOSE_DIR / "compose.yaml")
    return compose


def _service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = _compose()["services"][name]
    return service


@cache
def _manifests() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, doc)
        for path in sorted(K8S_DIR.glob("*.yaml"))
        for doc in _yaml_documents(path)
        if doc.get("kind") != "Kustomization"
    ]


def _manifest(kind: str, name: str) -> dict[str, Any]:
    found = [doc for _, doc in _manifests() if doc["kind"] == kind]
    for doc in found:
        if doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} {name} in {_rel(K8S_DIR)} (found {len(found)} {kind})")


def _pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for _, doc in _manifests():
        if doc["kind"] in ("Deployment", "Job"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


@cache
def _units() -> dict[str, dict[str, dict[str, list[str]]]]:
    return {path.name: _parse_unit(path) for path in sorted(SYSTEMD_DIR.glob("cable-ingest*"))}


class _MultiDict(dict[str, Any]):
    """A configparser section that keeps every value of a repeated key (as systemd does)."""

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, list) and key in self:
            self[key].extend(value)
        else:
            super().__setitem__(key, value)


def _parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    parser = configparser.RawConfigParser(
        strict=False,  # systemd allows a key more than once (EnvironmentFile=, ExecStartPre=…)
        dict_type=_MultiDict,
        interpolation=None,  # %i, %S… are systemd specifiers, not configparser's
        comment_prefixes=("#", ";"),
        inline_comment_prefixes=None,
        empty_lines_in_values=False,
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return {
        section: {key: value.split("\n") for key, value in parser.items(section)}
        for section in parser.sections()
    }


@cache
def _env_example() -> dict[str, tuple[str, bool]]:
    """Variables of env.example: name -> (value, set), where set is False when commented out."""
    variables: dict[str, tuple[str, bool]] = {}
    line_re = re.compile(r"(?P<comment>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)")
    for line in (SYSTEMD_DIR / "env.example").read_text(encoding="utf-8").splitlines():
        match = line_re.fullmatch(line.strip())
        if match:
            variables[match["name"]] = (match["value"], match["comment"] is None)
    return variables


def _settings_variables() -> list[str]:
    """Every CABLE_INGEST_ variable worker/settings.py reads (its ``env.get("NAME"`` calls)."""
    source = (ROOT / "worker" / "settings.py").read_text(encoding="utf-8")
    return [PREFIX + name for name in re.findall(r'env\.get\(\s*"([A-Z0-9_]+)"', source)]


def _interpolated(value: str, secret: str = "Secret0") -> str:
    """``value`` as compose would interpolate it: defaults taken, required variables filled in."""

    def fill(match: re.Match[str]) -> str:
        if match["op"] in ("-", ":-"):
            return match["arg"]
        return secret

    return _INTERPOLATION.sub(fill, value)


def _hard_limit(environ: Mapping[str, str]) -> int:
    """Seconds after which Celery kills a batch, for these settings (from the app's own config)."""
    limit: int = celery_config(Settings.from_env(environ), DEFAULT_CONFIG)["task_time_limit"]
    return limit


# --- the command line ----------------------------------------------------------------------------
@cache
def _parser() -> argparse.ArgumentParser:
    return build_parser()


def _subcommands() -> set[str]:
    for action in _parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("cable-ingest has no subcommands")


def _check_command(argv: list[str], where: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``argv`` (starting with cable-ingest) is accepted by the real argument parser."""
    assert argv, f"{where}: empty command"
    assert Path(argv[0]).name == "cable-ingest", f"{where}: {argv} does not run cable-ingest"
    if len(argv) > 1 and argv[1] in PENDING_SUBCOMMANDS and argv[1] not in _subcommands():
        return
    try:
        _parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"{where}: cable-ingest rejects {shlex.join(argv)}: {capsys.readouterr().err}")


def _documented_commands(text: str) -> list[list[str]]:
    """The ``cable-ingest …`` commands quoted in text (backticks, or lines of a code block)."""
    text = re.sub(r"\{\{\s*\$labels\.stage\s*\}\}", "parse", text)
    text = re.sub(r"\{\{\s*\$labels\.sink\s*\}\}", "storage", text)
    quoted = re.findall(r"`(cable-ingest [^`]+)`", text)
    quoted += re.findall(r"^\s*(cable-ingest [^#\n]+)", text, flags=re.MULTILINE)
    commands = []
    for snippet in quoted:
        if "…" in snippet or "[" in snippet or "|" in snippet:
            continue  # a synopsis (`worker [-Q queues]`), not a command
        commands.append([PLACEHOLDERS.get(token, token) for token in shlex.split(snippet)])
    return commands


# --- PromQL --------------------------------------------------------------------------------------
def _walk(node: Any) -> Iterator[Any]:
    yield node
    children: list[Any] = []
    if isinstance(node, promql_parser.MatrixSelector):
        children = [node.vector_selector]
    elif isinstance(node, promql_parser.AggregateExpr):
        children = [node.expr, node.param]
    elif isinstance(node, promql_parser.BinaryExpr):
        children = [node.lhs, node.rhs]
    elif isinstance(
        node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr
    ):
        children = [node.expr]
    elif isinstance(node, promql_parser.Call):
        children = list(node.args)
    for child in children:
        if isinstance(child, promql_parser.Expr):
            yield from _walk(child)


def _analyse(expr: str, where: str) -> tuple[set[str], list[str]]:
    """The cable_ingest_* series an expression reads, and its problems against the contract."""
    try:
        tree = promql_parser.parse(expr)
    except ValueError as error:
        return set(), [f"{where}: does not parse: {error}: {expr}"]
    used: set[str] = set()
    problems: list[str] = []
    for node in _walk(tree):
        if isinstance(node, promql_parser.VectorSelector) and node.name is not None:
            labels = {matcher.name for matcher in node.matchers.matchers}
            if not node.name.startswith("cable_ingest_"):
                continue
            used.add(node.name)
            if node.name not in SERIES:
                problems.append(f"{where}: {node.name} is not a metric of the contract")
            elif extra := labels - SERIES[node.name] - TARGET_LABELS:
                problems.append(f"{where}: {node.name} has no label {sorted(extra)}")
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            if extra := set(node.modifier.labels) - KNOWN_LABELS:
                problems.append(f"{where}: groups by unknown label(s) {sorted(extra)}")
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            matching = node.modifier.matching
            if matching is not None and (extra := set(matching.labels) - KNOWN_LABELS):
                problems.append(f"{where}: matches on unknown label(s) {sorted(extra)}")
    return used, problems


def _base_metric(series: str) -> str:
    for name in HISTOGRAMS:
        if series.startswith(name):
            return name
    return series


@cache
def _rules() -> list[dict[str, Any]]:
    return [rule for group in _yaml(ALERTS)["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable in ("$__rate_interval", "$__interval", "$__range"):
                expr = expr.replace(variable, "5m")
            exprs.append((f"panel {panel['title']!r} {target['refId']}", expr))
    return exprs


# =================================================================================================
# every file parses
# =================================================================================================
@pytest.mark.parametrize("path", _files(".yaml", ".yml"), ids=_rel)
def test_yaml_parses(path: Path) -> None:
    """Every YAML file under deploy/ parses with PyYAML's safe loader, each document a mapping."""
    documents = _yaml_documents(path)
    assert documents, f"{_rel(path)} holds no document"
    assert all(isinstance(doc, dict) for doc in documents)


@pytest.mark.parametrize("path", _files(".json"), ids=_rel)
def test_json_parses(path: Path) -> None:
    """Every JSON file under deploy/ parses to an object."""
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)


@pytest.mark.parametrize("path", _files(".toml"), ids=_rel)
def test_sinks_files_load(path: Path) -> None:
    """Every sinks TOML under deploy/ parses and passes the worker's own config checks."""
    tomllib.loads(path.read_text(encoding="utf-8"))
    assert "storage" in load_config(path).sinks


def test_there_are_files_to_check() -> None:
    """The file lists the parametrized tests run over are not empty (a moved folder fails here)."""
    assert len(_files(".yaml", ".yml")) >= 13
    assert _files(".json")
    assert _files(".toml")


def test_validators_reject_bad_documents() -> None:
    """The schema validators and the PromQL parser used below reject known-bad input."""
    compose_errors = list(
        jsonschema.Draft202012Validator(_compose_schema()).iter_errors(
            {"services": {"worker": {"image": "x", "replica": 2}}}
        )
    )
    assert compose_errors, "the compose schema accepts an unknown service key"
    bad_deployment = _manifest("Deployment", "cable-ingest-worker") | {"spek": {}}
    with pytest.raises(k8s.ValidationError):
        k8s.validate(bad_deployment, k8s.latest_version(), strict=True)
    assert _analyse("sum(rate(x[5m])", "bad")[1]
    assert _analyse("cable_ingest_cables_lost_total", "bad")[1]


# =================================================================================================
# no secrets in the files
# =================================================================================================
@pytest.mark.parametrize("path", [p for p in _files("") if p.suffix != ".json"], ids=_rel)
def test_no_password_written_into_a_url(path: Path) -> None:
    """No URL under deploy/ carries a real password: only an interpolation or a placeholder."""
    text = _INTERPOLATION.sub("INTERPOLATED", path.read_text(encoding="utf-8"))
    for match in _URL_PASSWORD.finditer(text):
        assert match["password"] in _PLACEHOLDER_PASSWORDS, f"{_rel(path)}: {match[0]}"


def _required_interpolation(value: str) -> bool:
    """``value`` is exactly one ``${VAR:?message}``: compose stops when VAR is unset."""
    match = _INTERPOLATION.fullmatch(value)
    return match is not None and match["op"] == ":?"


def test_compose_secrets_are_interpolated() -> None:
    """Every secret-looking compose variable and --requirepass is a required ${VAR:?} interpolation."""
    for name, service in _compose()["services"].items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: write environment as a mapping"
        for key, value in environment.items():
            if _SECRET_KEY.search(key):
                assert _required_interpolation(str(value)), f"{name}.environment.{key}: {value!r}"
        for flag, value in itertools.pairwise(service.get("command", [])):
            if flag == "--requirepass":
                assert _required_interpolation(value), f"{name}: --requirepass {value!r}"
    ignored = (COMPOSE_DIR / ".gitignore").read_text(encoding="utf-8").split()
    assert {".env", "secrets.env"} <= set(ignored)


def test_secret_template_holds_placeholders_only() -> None:
    """The Kubernetes Secret is a marked template: every value a CHANGE-ME placeholder, never applied."""
    path = K8S_DIR / "secret.example.yaml"
    assert path.read_text(encoding="utf-8").startswith("# TEMPLATE")
    secret = _manifest("Secret", "cable-ingest")
    assert "data" not in secret
    for key, value in secret["stringData"].items():
        assert "CHANGE-ME" in value, f"{key} is not a placeholder"
    assert path.name not in _yaml(K8S_DIR / "kustomization.yaml")["resources"]


# =================================================================================================
# compose
# =================================================================================================
@cache
def _compose_schema() -> dict[str, Any]:
    # The Compose Specification's schema, as vendored (Apache-2.0) by the check-jsonschema package.
    resource = files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return schema


def test_compose_validates_against_the_compose_specification() -> None:
    """compose.yaml is valid against the Compose Specification JSON schema."""
    validator = jsonschema.Draft202012Validator(_compose_schema())
    errors = [
        f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(_compose())
    ]
    assert not errors, "\n".join(errors)


def test_compose_services_and_healthchecks() -> None:
    """The stack has its eight services, and each long-running one but Flower has a healthcheck."""
    services = _compose()["services"]
    expected = {
        "redis",
        "postgres",
        "migrate",
        "worker",
        "metrics",
        "flower",
        "prometheus",
        "grafana",
    }
    assert expected <= set(services)
    for name in expected - {"migrate", "flower"}:
        test = services[name].get("healthcheck", {}).get("test") or ["none"]
        assert test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"


def test_compose_redis_and_postgres() -> None:
    """Redis 7 keeps an fsynced append-only file on a volume; PostgreSQL 16 keeps its data on one."""
    redis = _service("redis")
    assert redis["image"] == "redis:7"
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command
    postgres = _service("postgres")
    assert postgres["image"] == "postgres:16"
    for service, target in ((redis, "/data"), (postgres, "/var/lib/postgresql/data")):
        volume, _, mount = service["volumes"][0].partition(":")
        assert mount == target
        assert volume in _compose()["volumes"]


def test_compose_commands_are_accepted_by_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    """migrate, worker and metrics run cable-ingest commands its argument parser accepts."""
    assert _service("migrate")["command"] == ["cable-ingest", "migrate"]
    worker = _service("worker")["command"]
    assert worker[0] == "with-metrics"
    _check_command(worker[1:], "worker", capsys)
    metrics = _service("metrics")["command"]
    assert metrics[metrics.index("--port") + 1] == "9808"
    _check_command(metrics, "metrics", capsys)
    script = (COMPOSE_DIR / "with-metrics.sh").read_text(encoding="utf-8")
    (line,) = [line for line in script.splitlines() if line.startswith("cable-ingest ")]
    _check_command(shlex.split(line.replace('"${METRICS_PORT:-9808}"', "9808"))[:-1], "sh", capsys)


def test_compose_worker() -> None:
    """Two worker replicas, built from the Dockerfile, healthchecked, started in dependency order."""
    worker = _service("worker")
    assert worker["deploy"]["replicas"] == 2
    assert (COMPOSE_DIR / worker["build"]["context"]).resolve() == ROOT
    assert (COMPOSE_DIR / worker["build"]["context"] / worker["build"]["dockerfile"]).is_file()
    assert worker["healthcheck"]["test"] == ["CMD", "cable-ingest", "health"]
    assert worker["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert worker["init"] is True
    assert worker["stop_signal"] == "SIGTERM"


def test_compose_environment_is_valid_for_the_settings() -> None:
    """The services' environment, interpolated, is accepted by Settings.from_env and points at the stack."""
    environment = {k: _interpolated(str(v)) for k, v in _service("worker")["environment"].items()}
    settings = Settings.from_env(environment)
    broker = urlsplit(settings.broker_url)
    assert (broker.scheme, broker.hostname, broker.port, broker.path) == (
        "redis",
        "redis",
        6379,
        "/0",
    )
    database = make_url(settings.database_url)
    assert database.drivername == "postgresql+psycopg"
    assert database.host == "postgres"
    assert database.password is None  # it comes from PGPASSWORD
    assert settings.log_format == "json"
    config = _service("worker")["configs"][0]
    assert str(settings.config_file) == config["target"]
    assert (COMPOSE_DIR / _compose()["configs"][config["source"]]["file"]).is_file()
    assert str(settings.var_dir) in _service("worker")["volumes"]
    grace = promql_parser.parse_duration(_service("worker")["stop_grace_period"])
    assert grace > timedelta(seconds=_hard_limit(environment))


def test_compose_bind_mounts_exist() -> None:
    """Every file or folder compose bind-mounts from deploy/compose exists."""
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (COMPOSE_DIR / source).exists(), f"{name}: {volume}"


def test_compose_publishes_on_loopback_only() -> None:
    """Published ports bind 127.0.0.1; Redis and PostgreSQL publish none."""
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"
    assert "ports" not in _service("redis")
    assert "ports" not in _service("postgres")


def test_dockerfile() -> None:
    """The image is python:3.11-slim, installs into /opt/cable-ingest/.venv, runs as uid 10001."""
    lines = (COMPOSE_DIR / "Dockerfile").read_text(encoding="utf-8").splitlines()
    instructions = [
        line.split(None, 1) for line in lines if line and not line.startswith(("#", " "))
    ]
    froms = [rest for op, rest in instructions if op == "FROM"]
    assert froms[-1] == "python:3.11-slim"
    users = [rest for op, rest in instructions if op == "USER"]
    assert users == ["10001:10001"]
    for op, rest in instructions:
        if op == "COPY" and "--from=" not in rest:
            *sources, _target = [word for word in rest.split() if not word.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file in the context"
    assert "/opt/cable-ingest/.venv/bin/pip install ." in "\n".join(lines)
    assert VENV_BIN.startswith("/opt/cable-ingest/.venv/")
    result = subprocess.run(
        ["sh", "-n", str(COMPOSE_DIR / "with-metrics.sh")], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_flower_app_reads_the_workers_replies() -> None:
    """Flower's app module accepts the workers' orjson replies, which a JSON-only Celery app refuses."""
    service = _service("flower")
    assert service["image"].startswith("mher/flower:")
    assert service["command"][:3] == ["celery", "-A", "flower_app"]
    assert "./flower/flower_app.py:/data/flower_app.py:ro" in service["volumes"]
    # in a child process: the module re-registers "orjson" in kombu's process-wide registry
    code = """
import runpy, sys
import orjson
from kombu.exceptions import ContentDisallowed
from kombu.serialization import loads, prepare_accept_content
payload = orjson.dumps({"ok": True})
try:
    loads(payload, "application/x-orjson", "utf-8", accept=prepare_accept_content(["json"]))
    sys.exit("a JSON-only app accepted orjson")
except ContentDisallowed:
    pass
app = runpy.run_path(sys.argv[1])["app"]
accept = prepare_accept_content(app.conf.accept_content)
assert loads(payload, "application/x-orjson", "utf-8", accept=accept) == {"ok": True}
"""
    script = str(COMPOSE_DIR / "flower" / "flower_app.py")
    result = subprocess.run(
        [sys.executable, "-c", code, script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


# =================================================================================================
# Prometheus, alerts, Grafana
# =================================================================================================
REQUIRED_ALERTS: dict[str, tuple[tuple[str, ...], str]] = {
    "CableIngestDeadLetters": (("increase(cable_ingest_dead_letters_total[15m])", "> 0"), ""),
    "CableIngestDeadLettersHighRate": (("rate(cable_ingest_dead_letters_total",), ""),
    "CableIngestIntakeOldestTooOld": (
        ('cable_ingest_queue_oldest_age_seconds{queue="intake"}', "> 300"),
        "5m",
    ),
    "CableIngestQueueGrowing": (("cable_ingest_queue_depth",), ""),
    "CableIngestNoWorkers": (("cable_ingest_workers_online", "== 0"), "2m"),
    "CableIngestSinkStalled": (
        ("cable_ingest_last_delivery_timestamp_seconds", "cable_ingest_queue_depth"),
        "",
    ),
    "CableIngestMetricsDown": (("up{",), ""),
}


def test_alert_rules_structure() -> None:
    """Rule groups hold alerts with expr, for, a severity label and summary/description annotations."""
    groups = _yaml(ALERTS)["groups"]
    assert groups
    names = []
    for group in groups:
        assert group["name"].startswith("cable-ingest.")
        assert group["rules"], f"group {group['name']} is empty"
        for rule in group["rules"]:
            names.append(rule["alert"])
            assert re.fullmatch(r"CableIngest[A-Z][A-Za-z]+", rule["alert"])
            assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
            promql_parser.parse_duration(rule["for"])
            assert rule["labels"]["severity"] in ("critical", "warning", "info")
            assert set(rule["annotations"]) == {"summary", "description"}
            assert all(text.strip() for text in rule["annotations"].values())
            # the operator is told what to run
            assert "`" in rule["annotations"]["description"], rule["alert"]
    assert len(names) == len(set(names)), "alert names repeat"


def test_required_alerts() -> None:
    """The alerts the runbook promises exist, with the expressions and durations agreed."""
    rules = {rule["alert"]: rule for rule in _rules()}
    for name, (fragments, duration) in REQUIRED_ALERTS.items():
        assert name in rules, f"missing alert {name}"
        expr = " ".join(rules[name]["expr"].split())
        for fragment in fragments:
            assert fragment in expr, f"{name}: {fragment!r} not in {expr!r}"
        if duration:
            assert rules[name]["for"] == duration, name
    descriptions = " ".join(rule["annotations"]["description"] for rule in _rules())
    assert "cable-ingest dlq list" in descriptions
    assert "cable-ingest status" in descriptions


def test_alert_expressions_follow_the_metrics_contract() -> None:
    """Every alert expression parses as PromQL and uses only the contract's metric and label names."""
    problems = []
    for rule in _rules():
        problems += _analyse(rule["expr"], rule["alert"])[1]
        for text in rule["annotations"].values():
            for label in re.findall(r"\$labels\.([A-Za-z_]+)", text):
                if label not in KNOWN_LABELS:
                    problems.append(f"{rule['alert']}: annotation uses unknown label {label}")
    assert not problems, "\n".join(problems)


def test_alert_commands_are_accepted_by_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    """Every `cable-ingest …` command an alert tells the operator to run is a valid command line."""
    commands = []
    for rule in _rules():
        for argv in _documented_commands(rule["annotations"]["description"]):
            commands.append(argv)
            _check_command(argv, rule["alert"], capsys)
    assert len(commands) >= 10


def test_promtool_accepts_rules_and_config(tmp_path: Path) -> None:
    """promtool checks the rule file and the Prometheus config (skipped where promtool is absent)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    rules = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, check=False
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    # the same config, with the rule file where it is here rather than where compose mounts it
    config = _yaml(COMPOSE_DIR / "prometheus" / "prometheus.yml") | {"rule_files": [str(ALERTS)]}
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config), encoding="utf-8")
    checked = subprocess.run(
        [promtool, "check", "config", str(copy)], capture_output=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_prometheus_config_matches_compose() -> None:
    """Prometheus scrapes metrics:9808 and the worker replicas, and loads the rules compose mounts."""
    config = _yaml(COMPOSE_DIR / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["cable-ingest"]["static_configs"][0]["targets"] == ["metrics:9808"]
    (sd,) = jobs["cable-ingest-workers"]["dns_sd_configs"]
    assert sd["names"] == ["worker"]
    assert sd["port"] == 9808
    # CableIngestMetricsDown watches up{job=~"cable-ingest.*"}: every job must match it
    assert all(re.fullmatch(r"cable-ingest.*", name) for name in jobs)
    mounts = dict(v.split(":")[:2] for v in _service("prometheus")["volumes"] if v.startswith("./"))
    assert mounts["./prometheus/alerts.yml"] in config["rule_files"]
    assert (
        "--config.file=" + mounts["./prometheus/prometheus.yml"]
        in _service("prometheus")["command"]
    )


def test_grafana_provisioning_matches_compose() -> None:
    """The provisioned datasource is compose's Prometheus and the dashboard folder is the one mounted."""
    (datasource,) = _yaml(COMPOSE_DIR / "grafana/provisioning/datasources/prometheus.yaml")[
        "datasources"
    ]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = _yaml(COMPOSE_DIR / "grafana/provisioning/dashboards/cable-ingest.yaml")[
        "providers"
    ]
    mounts = dict(v.split(":")[:2] for v in _service("grafana")["volumes"] if v.startswith("./"))
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning/datasources"] == "/etc/grafana/provisioning/datasources"
    assert mounts["./grafana/provisioning/dashboards"] == "/etc/grafana/provisioning/dashboards"
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for ref in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
            assert ref == {"type": "prometheus", "uid": datasource["uid"]}, panel["title"]


def test_dashboard_layout() -> None:
    """The dashboard has a uid, unique panel ids, and panels that do not overlap."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "cable-ingest"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[x, y]}"
                cells[x, y] = panel["title"]


def test_dashboard_follows_the_metrics_contract() -> None:
    """Every dashboard query parses, uses only contract names, and every contract metric is shown."""
    used: set[str] = set()
    problems: list[str] = []
    for where, expr in _dashboard_exprs():
        names, found = _analyse(expr, where)
        used |= names
        problems += found
    assert not problems, "\n".join(problems)
    shown = {_base_metric(name) for name in used}
    assert shown == set(COUNTERS) | set(HISTOGRAMS) | set(GAUGES)
    exprs = " ".join(expr for _, expr in _dashboard_exprs())
    assert "histogram_quantile(0.5," in exprs
    assert "histogram_quantile(0.99," in exprs


# =================================================================================================
# systemd
# =================================================================================================
def test_systemd_units_parse() -> None:
    """Each unit parses with configparser; services have ExecStart, Restart and User, all have Install."""
    units = _units()
    assert set(units) == {
        "cable-ingest-worker@.service",
        "cable-ingest-metrics.service",
        "cable-ingest.target",
    }
    for name, unit in units.items():
        assert "Description" in unit["Unit"], name
        assert "WantedBy" in unit["Install"], name
        if name.endswith(".service"):
            service = unit["Service"]
            for key in ("ExecStart", "Restart", "User"):
                assert key in service, f"{name}: no {key}="
            assert service["User"] == ["cable-ingest"]
            assert service["Restart"] == ["on-failure"]
            assert "/etc/cable-ingest/env" in service["EnvironmentFile"]
            assert unit["Install"]["WantedBy"] == ["cable-ingest.target"]
            assert unit["Unit"]["PartOf"] == ["cable-ingest.target"]


def test_systemd_commands_are_accepted_by_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    """ExecStart runs the venv's cable-ingest with arguments its parser accepts."""
    for name, unit in _units().items():
        if not name.endswith(".service"):
            continue
        (exec_start,) = unit["Service"]["ExecStart"]
        argv = shlex.split(exec_start)
        assert argv[0] == VENV_BIN, name
        for options in ([], ["-Q", "intake", "-c", "4"]):  # $WORKER_OPTIONS: unset, or set
            expanded = [a for a in argv if a != "$WORKER_OPTIONS"]
            _check_command(expanded + (options if "$WORKER_OPTIONS" in argv else []), name, capsys)
    (worker,) = _units()["cable-ingest-worker@.service"]["Service"]["ExecStart"]
    assert shlex.split(worker)[1] == "worker"
    (metrics,) = _units()["cable-ingest-metrics.service"]["Service"]["ExecStart"]
    assert shlex.split(metrics)[1:] == ["metrics", "--host", "0.0.0.0", "--port", "9808"]


def test_systemd_worker_shutdown_and_hardening() -> None:
    """The worker stops with SIGTERM and waits past the task hard limit, in a hardened sandbox."""
    service = _units()["cable-ingest-worker@.service"]["Service"]
    assert service["KillSignal"] == ["SIGTERM"]
    assert service["KillMode"] == ["mixed"]  # SIGTERM to Celery's main process, not its children
    environment = {name: value for name, (value, is_set) in _env_example().items() if is_set}
    (timeout,) = service["TimeoutStopSec"]
    assert int(timeout) > _hard_limit(environment)
    var_dir = environment[PREFIX + "VAR_DIR"]
    for name, unit in _units().items():
        if not name.endswith(".service"):
            continue
        hardening = unit["Service"]
        assert hardening["NoNewPrivileges"] == ["yes"], name
        assert hardening["ProtectSystem"] == ["strict"], name
        assert hardening["PrivateTmp"] == ["yes"], name
        assert hardening["ReadWritePaths"] == [var_dir], name
        assert hardening["StateDirectory"] == [var_dir.removeprefix("/var/lib/")], name


def test_env_example_lists_every_setting() -> None:
    """env.example names every CABLE_INGEST_ variable worker/settings.py reads."""
    read = _settings_variables()
    assert len(read) >= 15, 'the env.get("NAME" pattern no longer finds the settings'
    missing = sorted(set(read) - set(_env_example()))
    assert not missing, f"env.example lacks {missing}"
    unknown = sorted(
        name for name in _env_example() if name.startswith(PREFIX) and name not in read
    )
    assert not unknown, f"env.example sets variables nothing reads: {unknown}"


def test_env_example_values_are_valid() -> None:
    """The values env.example sets are valid settings, and the defaults it shows are the real ones."""
    variables = _env_example()
    Settings.from_env({name: value for name, (value, is_set) in variables.items() if is_set})
    for name, (value, is_set) in variables.items():
        if name.startswith(PREFIX) and not is_set:
            assert Settings.from_env({name: value}) == Settings(), f"{name}={value} is no default"


# =================================================================================================
# Kubernetes
# =================================================================================================
@pytest.mark.parametrize("version", ["1.29", k8s.latest_version()])
def test_kubernetes_manifests_validate(version: str) -> None:
    """Every built-in Kubernetes object validates (strict: no unknown field) against its OpenAPI schema."""
    checked = []
    for path, doc in _manifests():
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # CRDs kubernetes-validate does not know: checked structurally below
        try:
            k8s.validate(doc, version, strict=True)
        except k8s.ValidationError as error:
            where = ".".join(map(str, error.path))
            pytest.fail(
                f"{_rel(path)} {doc['kind']}/{doc['metadata']['name']}: {where}: {error.message}"
            )
        checked.append(doc["kind"])
    assert sorted(set(checked)) == [
        "ConfigMap",
        "Deployment",
        "Job",
        "Namespace",
        "Secret",
        "Service",
    ]


def test_kubernetes_objects_share_namespace_and_labels() -> None:
    """Every object is in the cable-ingest namespace and carries the app's name label."""
    for path, doc in _manifests():
        metadata = doc["metadata"]
        where = f"{_rel(path)} {doc['kind']}"
        if doc["kind"] == "Namespace":
            assert metadata["name"] == "cable-ingest"
        else:
            assert metadata.get("namespace") == "cable-ingest", where
        assert metadata["labels"]["app.kubernetes.io/name"] == "cable-ingest", where


def test_kubernetes_references_resolve() -> None:
    """Selectors match pod labels; ConfigMaps, the Secret and ports referred to exist."""
    configmaps = {doc["metadata"]["name"] for _, doc in _manifests() if doc["kind"] == "ConfigMap"}
    secrets = {doc["metadata"]["name"] for _, doc in _manifests() if doc["kind"] == "Secret"}
    for _, doc in _manifests():
        if doc["kind"] == "Deployment":
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for where, pod in _pod_specs():
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps, where
        mounts_known = {volume["name"] for volume in pod.get("volumes", [])}
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps, where
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, where
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in mounts_known, where
    service = _manifest("Service", "cable-ingest-metrics")
    pod = _manifest("Deployment", "cable-ingest-metrics")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c["ports"]}
    (port,) = service["spec"]["ports"]
    assert port["port"] == 9808
    assert ports[port["targetPort"]] == 9808


def test_kubernetes_pods_are_restricted_and_bounded() -> None:
    """Every pod runs non-root, read-only, without privileges or capabilities, with resource requests."""
    for where, pod in _pod_specs():
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, where
        assert context["runAsUser"] == 10001, where  # the Dockerfile's user
        assert context["seccompProfile"]["type"] == "RuntimeDefault", where
        assert pod["automountServiceAccountToken"] is False, where
        for container in pod["containers"]:
            name = f"{where} {container['name']}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"], name
            assert container["resources"]["limits"]["memory"], name
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            assert "/tmp" in mounts, name


def test_kubernetes_commands_are_accepted_by_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    """Every container command and exec probe is a cable-ingest command line its parser accepts."""
    for where, pod in _pod_specs():
        for container in pod["containers"]:
            _check_command(container["command"], f"{where} {container['name']}", capsys)
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if "exec" in container.get(probe, {}):
                    _check_command(container[probe]["exec"]["command"], f"{where} {probe}", capsys)
    job = _manifest("Job", "cable-ingest-migrate")["spec"]["template"]["spec"]
    assert job["containers"][0]["command"] == ["cable-ingest", "migrate"]


def _k8s_environment() -> dict[str, str]:
    environment: dict[str, str] = dict(_manifest("ConfigMap", "cable-ingest-env")["data"])
    environment |= _manifest("Secret", "cable-ingest")["stringData"]
    return environment


def test_kubernetes_environment_and_config_are_valid(tmp_path: Path) -> None:
    """The ConfigMap and Secret make valid settings, and the sinks TOML in the ConfigMap loads."""
    settings = Settings.from_env(_k8s_environment())
    assert settings.broker_url.startswith("redis://")
    assert make_url(settings.database_url).password is None  # it comes from PGPASSWORD
    assert "PGPASSWORD" in _manifest("Secret", "cable-ingest")["stringData"]
    assert settings.config_file is not None
    (key, toml) = next(iter(_manifest("ConfigMap", "cable-ingest-config")["data"].items()))
    assert key == settings.config_file.name
    for where, pod in _pod_specs():
        mounts = {m["mountPath"] for c in pod["containers"] for m in c["volumeMounts"]}
        assert str(settings.config_file.parent) in mounts, where
    path = tmp_path / key
    path.write_text(toml, encoding="utf-8")
    assert "storage" in load_config(path).sinks


def test_kubernetes_worker_deployment() -> None:
    """The worker waits past the task hard limit, probes with cable-ingest health, and writes only to emptyDirs."""
    deployment = _manifest("Deployment", "cable-ingest-worker")
    assert "replicas" not in deployment["spec"]  # KEDA owns the count
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > _hard_limit(_k8s_environment())
    containers = {c["name"]: c for c in pod["containers"]}
    worker = containers["worker"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert worker[probe]["exec"]["command"] == ["cable-ingest", "health"], probe
    var_dir = str(Settings.from_env(_k8s_environment()).var_dir)
    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in containers.values():
        (var,) = [m for m in container["volumeMounts"] if m["mountPath"] == var_dir]
        assert "emptyDir" in volumes[var["name"]]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9808"
    metrics_ports = [p["containerPort"] for p in containers["metrics"]["ports"]]
    assert metrics_ports == [9808]


def test_kubernetes_metrics_service_annotations() -> None:
    """The metrics Service carries the prometheus.io scrape annotations for port 9808."""
    annotations = _manifest("Service", "cable-ingest-metrics")["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9808",
        "prometheus.io/path": "/metrics",
    }


def test_keda_scaled_object() -> None:
    """The ScaledObject scales the worker Deployment 1-20 on the intake list, authenticated from the Secret."""
    scaled = _manifest("ScaledObject", "cable-ingest-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    target = spec["scaleTargetRef"]
    assert (target.get("apiVersion"), target.get("kind")) == ("apps/v1", "Deployment")
    deployment = _manifest("Deployment", target["name"])
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert target["envSourceContainerName"] in containers
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 20)
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "redis"
    metadata = trigger["metadata"]
    assert all(isinstance(value, str) for value in metadata.values()), "KEDA metadata are strings"
    assert metadata["listName"] == INTAKE_QUEUE
    assert metadata["listLength"].isdigit()
    settings = Settings.from_env(_k8s_environment())
    broker = urlsplit(settings.broker_url)
    assert metadata["databaseIndex"] == broker.path.lstrip("/")
    address = (
        _k8s_environment()[metadata["addressFromEnv"]]
        if "addressFromEnv" in metadata
        else metadata["address"]
    )
    assert address == f"{broker.hostname}:{broker.port}", "KEDA must watch the broker's Redis"
    # the scaler can reach maxReplicaCount before producers stop at the high-water mark
    messages_at_high_water = settings.high_water_mark // settings.batch_size
    assert int(metadata["listLength"]) * spec["maxReplicaCount"] <= messages_at_high_water
    auth = _manifest("TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "password"
    assert ref["key"] in _manifest("Secret", ref["name"])["stringData"]


def test_kustomization_lists_the_manifests() -> None:
    """kustomization.yaml applies every manifest but the Secret template, in the namespace."""
    kustomization = _yaml(K8S_DIR / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == "cable-ingest"
    expected = {
        path.name
        for path in K8S_DIR.glob("*.yaml")
        if path.name not in ("kustomization.yaml", "secret.example.yaml")
    }
    assert set(kustomization["resources"]) == expected
    images = {image["name"] for image in kustomization["images"]}
    used = {c["image"].rpartition(":")[0] for _, pod in _pod_specs() for c in pod["containers"]}
    assert used <= images


# =================================================================================================
# the runbook
# =================================================================================================
def test_readme_documents_every_alert() -> None:
    """deploy/README.md names every alert of alerts.yml."""
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    missing = [rule["alert"] for rule in _rules() if rule["alert"] not in readme]
    assert not missing, f"deploy/README.md does not mention {missing}"


def test_readme_paths_exist() -> None:
    """Every deploy/… path deploy/README.md names exists (or is made from its .example)."""
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    paths = set(re.findall(r"`(deploy/[^`*<>{} ]+)`", readme))
    assert len(paths) >= 10
    for path in paths:
        assert (ROOT / path).exists() or (ROOT / f"{path}.example").exists(), path


def test_readme_commands_are_accepted_by_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    """Every cable-ingest command deploy/README.md shows is a command line the CLI accepts."""
    commands = _documented_commands((DEPLOY / "README.md").read_text(encoding="utf-8"))
    assert len(commands) >= 5
    for argv in commands:
        _check_command(argv, "deploy/README.md", capsys)
