"""deploy/ checked without running it (no container engine or cluster here): every
Kubernetes manifest against the published Kubernetes schemas (kubernetes-validate) and the
CloudNativePG Cluster against its CRD's schema, compose.yaml against the Compose
Specification's schema (both vendored in tests/schemas/), the Dockerfile parsed; then the
facts that tie the files to each other and to the app, which a schema cannot see."""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from pydantic import AliasChoices
from starlette.routing import Match

from api.app import create_app
from api.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SCHEMAS = Path(__file__).resolve().parent / "schemas"

# The oldest Kubernetes the manifests are written for, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
CNPG_API_VERSION = "postgresql.cnpg.io/v1"



# --- loading -----------------------------------------------------------------------------

def _manifest_files() -> list[Path]:
    return sorted(path for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")


@cache
def _manifests() -> tuple[tuple[str, dict], ...]:
    """(file name, document) for every document of every manifest file."""
    return tuple((path.name, document) for path in _manifest_files()
                 for document in yaml.safe_load_all(path.read_text()) if document)


def _one(kind: str, name: str | None = None) -> dict:
    found = [doc for _, doc in _manifests()
             if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _workloads() -> list[dict]:
    return [doc for _, doc in _manifests() if doc["kind"] in ("Deployment", "Job")]


def _containers(workload: dict) -> list[dict]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def _api_deployment() -> dict:
    return _one("Deployment", "conflictkb-api")


def _env(container: dict) -> dict[str, dict]:
    return {var["name"]: var for var in container.get("env", [])}


@cache
def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


@cache
def _settings_env_names() -> frozenset[str]:
    """The environment names api/settings.py reads (its upper-case aliases)."""
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        names.update(choice for choice in choices if isinstance(choice, str) and choice.isupper())
    return frozenset(names)


def _unknown_settings(names: set[str]) -> set[str]:
    return names - _settings_env_names()


@cache
def _cluster_schema() -> dict:
    """The Cluster CRD's schema, strict as the API server's field validation (kubectl's
    default --validate=strict) is: an object's fields are the ones it lists, unless it
    keeps unknown fields. (kubernetes-validate's strict schemas are made the same way.)"""

    def strict(schema: dict) -> dict:
        schema = dict(schema)
        for keyword in ("properties", "patternProperties"):
            if keyword in schema:  # field name -> schema
                schema[keyword] = {name: strict(sub) for name, sub in schema[keyword].items()}
        for keyword in ("items", "additionalProperties", "not"):
            if isinstance(schema.get(keyword), dict):
                schema[keyword] = strict(schema[keyword])
        for keyword in ("allOf", "anyOf", "oneOf"):
            if keyword in schema:
                schema[keyword] = [strict(sub) for sub in schema[keyword]]
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema

    return strict(yaml.load((SCHEMAS / "cnpg-cluster-v1.30.0.schema.yaml").read_text(), Loader=yaml.CSafeLoader))


def _app_serves(path: str) -> bool:
    app = create_app(Settings(), database_url="postgresql://unused@127.0.0.1:1/unused",
                     redis_url="redis://127.0.0.1:1/0")
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
    return any(route.matches(scope)[0] is Match.FULL for route in app.router.routes)


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# --- Kubernetes: schemas -----------------------------------------------------------------

@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_kubernetes_manifest_is_valid_against_the_published_schema(version):
    checked = 0
    for file_name, document in _manifests():
        if document["apiVersion"] == CNPG_API_VERSION:
            continue  # not a built-in kind: the next test
        try:
            # strict: the schemas with additionalProperties false, so a misspelt field fails
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{file_name}: {document['kind']} {document['metadata']['name']} "
                        f"(Kubernetes {version}): {exc.message} at {'.'.join(map(str, exc.path))}")
        checked += 1
    assert checked >= 7  # two Deployments, two Services, the Job, the HPA, the PDB


def test_the_postgres_cluster_is_valid_against_the_cloudnative_pg_crd():
    schema = _cluster_schema()
    clusters = [(name, doc) for name, doc in _manifests() if doc["apiVersion"] == CNPG_API_VERSION]
    assert [doc["kind"] for _, doc in clusters] == ["Cluster"]
    for file_name, cluster in clusters:
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(cluster), key=str)
        assert not errors, f"{file_name}: " + "; ".join(
            f"{error.message} at {'.'.join(map(str, error.path))}" for error in errors)


def test_the_crd_schema_rejects_what_the_operator_would():
    """The vendored schema does check: a misspelt field and a wrong type are errors."""
    schema = _cluster_schema()
    cluster = _one("Cluster")
    validator = jsonschema.Draft7Validator(schema)
    wrong_type = {**cluster, "spec": {**cluster["spec"], "instances": "three"}}
    assert not validator.is_valid(wrong_type)
    misspelt = {**cluster, "spec": {**cluster["spec"], "storage": {"sise": "10Gi"}}}
    assert not validator.is_valid(misspelt)


def test_the_kustomization_lists_every_manifest_file():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [path.name for path in _manifest_files()]
    images = {image["name"] for image in kustomization.get("images", [])}
    used = {container["image"].split(":")[0] for workload in _workloads() for container in _containers(workload)}
    assert "conflictkb" in used and "conflictkb" in images


# --- Kubernetes: how the pieces fit ------------------------------------------------------

def test_the_cluster_has_a_primary_and_two_replicas():
    cluster = _one("Cluster")
    assert cluster["spec"]["instances"] == 3
    assert cluster["spec"]["bootstrap"]["initdb"]["database"] == "conflictkb"


@pytest.mark.parametrize("workload_name", ["conflictkb-api", "conflictkb-migrate"])
def test_the_api_writes_to_rw_and_reads_from_ro_of_the_cluster(workload_name):
    cluster = _one("Cluster")
    name, database = cluster["metadata"]["name"], cluster["spec"]["bootstrap"]["initdb"]["database"]
    workload = next(w for w in _workloads() if w["metadata"]["name"] == workload_name)
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    env = _env(container)

    def url(variable: str):
        return urlsplit(env[variable]["value"])

    assert url("DATABASE_URL").hostname == f"{name}-rw"
    assert url("DATABASE_URL").path == f"/{database}"
    if workload["kind"] == "Deployment":
        replicas = env["DATABASE_REPLICA_URLS"]["value"].split(",")
        assert [urlsplit(replica).hostname for replica in replicas] == [f"{name}-ro"]
        assert all(urlsplit(replica).path == f"/{database}" for replica in replicas)
    # credentials: the operator's secret for the owner of the database
    secrets = {var["valueFrom"]["secretKeyRef"]["name"] for var in env.values()
               if "secretKeyRef" in var.get("valueFrom", {}) and var["name"].startswith("DB_")}
    assert secrets == {f"{name}-app"}


def test_every_environment_name_is_a_setting_or_used_by_one():
    """A misspelt setting is silently ignored by the app; so is one it does not have."""
    for workload in _workloads():
        for container in _containers(workload):
            env = _env(container)
            referenced = {name for var in env.values() for name in re.findall(r"\$\((\w+)\)", var.get("value", ""))}
            assert referenced <= env.keys(), f"{container['name']}: $(...) of an undefined variable"
            unknown = _unknown_settings(env.keys() - referenced)
            assert not unknown, f"{workload['metadata']['name']}: {sorted(unknown)} are not settings"


def test_the_api_reaches_redis_through_its_service():
    (container,) = _api_deployment()["spec"]["template"]["spec"]["containers"]
    redis = urlsplit(_env(container)["REDIS_URL"]["value"])
    service = _one("Service", redis.hostname)
    assert redis.port in [port["port"] for port in service["spec"]["ports"]]


def test_probes_ask_paths_the_app_serves_on_a_port_the_container_names():
    (container,) = _api_deployment()["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    port_names = {port["name"] for port in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe in container:
            assert _app_serves(container[probe]["httpGet"]["path"]), probe
            assert container[probe]["httpGet"]["port"] in port_names, probe
    assert not _app_serves("/no-such-probe")


def test_the_api_pods_do_not_prepare_and_the_job_does():
    (api,) = _api_deployment()["spec"]["template"]["spec"]["containers"]
    assert api["command"][:2] == ["conflictkb", "serve"] and "--no-prepare" in api["command"]
    (migrate,) = _one("Job", "conflictkb-migrate")["spec"]["template"]["spec"]["containers"]
    assert migrate["command"][:2] in (["conflictkb", "seed"], ["conflictkb", "migrate"])


def test_autoscaler_and_disruption_budget_target_the_api_pods_and_only_them():
    deployment = _api_deployment()
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _selects(deployment["spec"]["selector"]["matchLabels"], pod_labels)

    target = _one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"], deployment["kind"], deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"], "the autoscaler owns replicas; apply would reset them"
    assert _one("HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2

    budget = _one("PodDisruptionBudget")
    selector = budget["spec"]["selector"]["matchLabels"]
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    others = [w for w in _workloads() if w is not deployment]
    assert not any(_selects(selector, w["spec"]["template"]["metadata"]["labels"]) for w in others)


def test_every_service_selects_the_pods_of_one_workload_on_a_port_they_name():
    for service in (doc for _, doc in _manifests() if doc["kind"] == "Service"):
        selected = [w for w in _workloads()
                    if _selects(service["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])]
        assert len(selected) == 1, service["metadata"]["name"]
        port_names = {port.get("name") for c in _containers(selected[0]) for port in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, service["metadata"]["name"]


def _dockerfile_user() -> str:
    users = [i["value"] for i in _dockerfile().structure if i["instruction"] == "USER"]
    return users[-1].split(":")[0]


def test_every_pod_runs_as_non_root_with_limits():
    for workload in _workloads():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, workload["metadata"]["name"]
        for container in _containers(workload):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        if any(c["image"].startswith("conflictkb") for c in _containers(workload)):
            # kubelet can check runAsNonRoot only against a numeric user: the image's own
            assert pod["securityContext"]["runAsUser"] == int(_dockerfile_user())


def test_a_read_only_root_still_has_the_data_directory_writable():
    """serve keeps its lock and the workers' /metrics series in CONFLICTKB_DATA_DIR."""
    data_dir = dict(_dockerfile().envs)["CONFLICTKB_DATA_DIR"]
    for workload in _workloads():
        for container in _containers(workload):
            if container["image"].startswith("conflictkb") and container["securityContext"].get("readOnlyRootFilesystem"):
                mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
                assert {data_dir, "/tmp"} <= mounts, workload["metadata"]["name"]


# --- Compose ------------------------------------------------------------------------------

def test_compose_is_valid_against_the_compose_specification():
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(_compose()), key=str)
    assert not errors, "; ".join(f"{e.message} at {'.'.join(map(str, e.path))}" for e in errors)
    wrong = {**_compose(), "services": {"api": {"image": "x", "depends_on": {"db": {"condition": "started"}}}}}
    assert not jsonschema.Draft7Validator(schema).is_valid(wrong)


def _compose_api_services() -> dict[str, dict]:
    return {name: service for name, service in _compose()["services"].items()
            if service.get("command", [])[:2] == ["conflictkb", "serve"]}


def test_compose_runs_two_apis_after_the_migration_has_finished():
    services = _compose()["services"]
    apis = _compose_api_services()
    assert len(apis) == 2
    (migrate,) = [name for name, s in services.items() if s.get("command", [])[:2] == ["conflictkb", "seed"]]
    for name, api in apis.items():
        assert "--no-prepare" in api["command"], name
        assert api["depends_on"][migrate] == {"condition": "service_completed_successfully"}, name
    host_ports = [port.split(":")[0] for api in apis.values() for port in api.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)) == 2


def test_compose_apis_write_to_the_primary_and_read_from_its_streaming_replica():
    services = _compose()["services"]
    for name, api in _compose_api_services().items():
        env = api["environment"]
        assert not _unknown_settings(set(env)), name
        primary = urlsplit(env["DATABASE_URL"]).hostname
        (replica,) = [urlsplit(url).hostname for url in env["DATABASE_REPLICA_URLS"].split(",")]
        assert "REDIS_URL" in env and urlsplit(env["REDIS_URL"]).hostname in services
        assert primary in services and replica in services and primary != replica
        assert replica in api["depends_on"], name
        # the replica is made from the primary by pg_basebackup -R, and waits for it
        replica_service = services[replica]
        assert replica_service["environment"]["PRIMARY_HOST"] == primary
        assert primary in replica_service["depends_on"]
        script = " ".join(replica_service["entrypoint"])
        assert "replica-entrypoint.sh" in script
    text = (DEPLOY / "postgres" / "replica-entrypoint.sh").read_text()
    assert "pg_basebackup" in text and "--write-recovery-conf" in text
    assert "replication" in (DEPLOY / "postgres" / "primary-init.sh").read_text()


def test_compose_mounts_and_builds_files_that_exist():
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name}: {source}"
        if "build" in service:
            context = DEPLOY / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file(), name


@pytest.mark.parametrize("script", sorted((DEPLOY / "postgres").glob("*.sh")), ids=lambda path: path.name)
def test_shell_scripts_parse(script):
    subprocess.run(["sh", "-n", str(script)], check=True)


# --- Dockerfile ---------------------------------------------------------------------------

@cache
def _dockerfile() -> DockerfileParser:
    # from bytes in memory: given a path, the parser would create a missing file
    return DockerfileParser(fileobj=io.BytesIO((DEPLOY / "Dockerfile").read_bytes()))


def test_dockerfile_is_multi_stage_and_ends_as_a_non_root_user():
    instructions = [(i["instruction"], i["value"]) for i in _dockerfile().structure]
    stages: list[str] = []
    user_of_last_stage = None
    for instruction, value in instructions:
        if instruction == "FROM":
            words = value.split()
            stages.append(words[2].lower() if len(words) == 3 and words[1].lower() == "as" else str(len(stages)))
            user_of_last_stage = None
        elif instruction == "USER":
            user_of_last_stage = value.split(":")[0]
        elif instruction == "COPY" and "--from=" in value:
            source = re.search(r"--from=(\S+)", value).group(1).lower()
            assert source in stages[:-1], f"COPY --from={source} names no earlier stage"
    assert len(stages) >= 2
    assert user_of_last_stage not in (None, "root", "0"), "the final stage must set a non-root USER"
    assert user_of_last_stage.isdigit()


def test_dockerfile_copies_files_that_exist():
    """From the build context, the repository root (`docker build -f deploy/Dockerfile .`)."""
    for instruction in _dockerfile().structure:
        if instruction["instruction"] != "COPY" or "--from=" in instruction["value"]:
            continue
        *sources, _destination = [word for word in shlex.split(instruction["value"]) if not word.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"


def test_dockerfile_command_is_a_cli_command():
    cmd = json.loads(next(i["value"] for i in reversed(_dockerfile().structure) if i["instruction"] == "CMD"))
    from api.cli import main

    assert cmd[0] == "conflictkb" and cmd[1] in main.list_commands(None)
