"""Drives swarm, nodes, services, tasks, secrets, configs and networks
through the Python `docker` SDK (PyPI `docker`) against the daemon at
$DOCKER_HOST (a Unix socket). The assertions were checked against the
reference dockerd 20.10 (api-fixtures/README.md) and must hold for shoald.

    DOCKER_HOST=unix:///path/docker.sock python3 -m pytest compat-tests/python

The daemon must not be in a swarm at the start; the module inits one and
leaves it at the end. Skipped when DOCKER_HOST is unset.
"""

import base64
import os
import pathlib
import subprocess
import tempfile
import time

import pytest

docker = pytest.importorskip("docker")
from docker.types import EndpointSpec  # noqa: E402
from docker.types import IPAMConfig  # noqa: E402
from docker.types import IPAMPool  # noqa: E402
from docker.types import ServiceMode  # noqa: E402

IMAGE = "shoal-test/busybox:latest"
REPO = pathlib.Path(__file__).resolve().parents[2]
NOT_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or '
    '"docker swarm join" to connect this node to swarm and try again.'
)

pytestmark = pytest.mark.skipif(
    not os.environ.get("DOCKER_HOST"), reason="DOCKER_HOST is not set"
)


def wait_for(what, check, timeout=60.0, interval=0.5):
    """Polls check() until it returns a truthy value (bounded in time)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def client():
    c = docker.from_env(version="auto", timeout=60)
    yield c
    c.close()


@pytest.fixture(scope="module")
def image(client):
    """Loads the local test image when the daemon does not have it."""
    try:
        client.images.get(IMAGE)
        return IMAGE
    except docker.errors.ImageNotFound:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        tar = pathlib.Path(tmp) / "image.tar"
        script = REPO / "compat-tests" / "scripts" / "make-test-image.sh"
        subprocess.run(["bash", str(script), str(tar)], check=True, stdout=subprocess.DEVNULL)
        with open(tar, "rb") as f:
            client.images.load(f.read())
    return IMAGE


@pytest.fixture(scope="module")
def swarm(client):
    if client.info()["Swarm"]["LocalNodeState"] == "active":
        client.swarm.leave(force=True)
    with pytest.raises(docker.errors.APIError) as err:
        client.nodes.list()
    assert err.value.status_code == 503
    assert err.value.explanation == NOT_MANAGER
    node_id = client.swarm.init(
        advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377", task_history_retention_limit=4
    )
    yield node_id
    client.swarm.leave(force=True)


def test_swarm_init_inspect_update(client, swarm):
    assert isinstance(swarm, str) and len(swarm) == 25
    client.swarm.reload()
    attrs = client.swarm.attrs
    assert attrs["JoinTokens"]["Worker"].startswith("SWMTKN-1-")
    assert attrs["JoinTokens"]["Manager"].startswith("SWMTKN-1-")
    assert attrs["JoinTokens"]["Worker"] != attrs["JoinTokens"]["Manager"]
    assert attrs["Spec"]["Orchestration"]["TaskHistoryRetentionLimit"] == 4
    assert attrs["Spec"]["EncryptionConfig"]["AutoLockManagers"] is False
    worker_token = attrs["JoinTokens"]["Worker"]

    client.swarm.update(task_history_retention_limit=3, rotate_worker_token=True)
    client.swarm.reload()
    assert client.swarm.attrs["Spec"]["Orchestration"]["TaskHistoryRetentionLimit"] == 3
    assert client.swarm.attrs["JoinTokens"]["Worker"] != worker_token
    assert client.swarm.attrs["Version"]["Index"] > attrs["Version"]["Index"]

    info = client.info()["Swarm"]
    assert info["LocalNodeState"] == "active"
    assert info["ControlAvailable"] is True
    assert info["NodeID"] == swarm
    assert info["Nodes"] == 1 and info["Managers"] == 1


def test_swarm_init_twice_and_leave_last_manager(client, swarm):
    with pytest.raises(docker.errors.APIError) as err:
        client.swarm.init(advertise_addr="127.0.0.1")
    assert err.value.status_code == 503
    assert "already part of a swarm" in err.value.explanation
    with pytest.raises(docker.errors.APIError) as err:
        client.swarm.leave()
    assert err.value.status_code == 503
    assert "Use `--force` to ignore this message." in err.value.explanation


def test_unlock_key(client, swarm):
    client.swarm.update(autolock_managers=True)
    key = client.api.get_unlock_key()
    assert key["UnlockKey"].startswith("SWMKEY-1-")
    client.swarm.update(autolock_managers=False)


def test_nodes(client, swarm):
    nodes = client.nodes.list()
    assert len(nodes) == 1
    node = nodes[0]
    assert node.id == swarm
    assert node.attrs["Spec"]["Role"] == "manager"
    assert node.attrs["Spec"]["Availability"] == "active"
    assert node.attrs["Status"]["State"] == "ready"
    assert node.attrs["ManagerStatus"]["Leader"] is True
    assert node.attrs["ManagerStatus"]["Reachability"] == "reachable"
    assert client.nodes.list(filters={"role": "manager"})[0].id == swarm
    assert client.nodes.list(filters={"role": "worker"}) == []

    spec = dict(node.attrs["Spec"])
    spec["Labels"] = {"env": "test"}
    assert node.update(spec) is True
    node.reload()
    assert node.attrs["Spec"]["Labels"] == {"env": "test"}

    demote = dict(node.attrs["Spec"], Role="worker")
    with pytest.raises(docker.errors.APIError) as err:
        node.update(demote)
    assert err.value.status_code == 400
    assert "attempting to demote the last manager of the swarm" in err.value.explanation

    with pytest.raises(docker.errors.APIError) as err:
        client.api.remove_node(node.id, force=True)
    assert err.value.status_code == 400
    assert "must be demoted to worker before removal" in err.value.explanation

    with pytest.raises(docker.errors.NotFound) as err:
        client.nodes.get("nosuch")
    assert err.value.explanation == "node nosuch not found"


def test_secrets(client, swarm):
    s = client.secrets.create(name="sdk-s1", data=b"pw1", labels={"env": "prod"})
    assert len(s.id) == 25
    got = client.secrets.get("sdk-s1")
    assert got.id == s.id
    assert got.name == "sdk-s1"
    assert got.attrs["Spec"]["Labels"] == {"env": "prod"}
    assert "Data" not in got.attrs["Spec"]
    assert [x.id for x in client.secrets.list(filters={"name": "sdk-s1"})] == [s.id]
    assert [x.id for x in client.secrets.list(filters={"label": "env=prod"})] == [s.id]

    with pytest.raises(docker.errors.APIError) as err:
        client.secrets.create(name="sdk-s1", data=b"again")
    assert err.value.status_code == 409
    assert "secret sdk-s1 already exists" in err.value.explanation

    with pytest.raises(docker.errors.APIError) as err:
        client.secrets.create(name="sdk-big", data=b"a" * 600000)
    assert err.value.status_code == 400
    assert "less than 512000 bytes" in err.value.explanation

    with pytest.raises(docker.errors.APIError) as err:
        client.secrets.create(name="bad name", data=b"x")
    assert err.value.status_code == 400

    s.remove()
    with pytest.raises(docker.errors.NotFound) as err:
        client.secrets.get("sdk-s1")
    assert err.value.explanation == "secret sdk-s1 not found"


def test_configs(client, swarm):
    c = client.configs.create(name="sdk-c1", data=b"listen=80\n", labels={"app": "x"})
    got = client.configs.get("sdk-c1")
    assert got.id == c.id
    assert got.name == "sdk-c1"
    assert base64.b64decode(got.attrs["Spec"]["Data"]) == b"listen=80\n"
    assert [x.id for x in client.configs.list(filters={"label": "app=x"})] == [c.id]

    with pytest.raises(docker.errors.APIError) as err:
        client.configs.create(name="sdk-c1", data=b"again")
    assert err.value.status_code == 409

    with pytest.raises(docker.errors.APIError) as err:
        client.configs.create(name="sdk-huge", data=b"a" * 1100000)
    assert err.value.status_code == 400
    assert "less than 1024000 bytes" in err.value.explanation

    c.remove()
    with pytest.raises(docker.errors.NotFound):
        client.configs.get("sdk-c1")


def test_networks(client, swarm):
    ipam = IPAMConfig(pool_configs=[IPAMPool(subnet="10.30.0.0/24", gateway="10.30.0.1")])
    n = client.networks.create(
        "sdk-ov", driver="overlay", attachable=True, ipam=ipam, labels={"team": "a"}
    )
    n.reload()
    assert n.attrs["Driver"] == "overlay"
    assert n.attrs["Scope"] == "swarm"
    assert n.attrs["Attachable"] is True
    assert n.attrs["IPAM"]["Config"] == [{"Subnet": "10.30.0.0/24", "Gateway": "10.30.0.1"}]
    assert n.attrs["Labels"] == {"team": "a"}
    assert n.id in [x.id for x in client.networks.list(names=["sdk-ov"])]
    assert n.id in [x.id for x in client.networks.list(filters={"driver": "overlay"})]

    with pytest.raises(docker.errors.APIError) as err:
        client.networks.create("sdk-ov", driver="overlay", check_duplicate=True)
    assert err.value.status_code == 409

    n.remove()
    with pytest.raises(docker.errors.NotFound):
        client.networks.get("sdk-ov")


def running_tasks(service):
    return [t for t in service.tasks() if t["Status"]["State"] == "running" and t["DesiredState"] == "running"]


def test_services_and_tasks(client, swarm, image):
    secret = client.secrets.create(name="sdk-user-secret", data=b"pw")
    svc = client.services.create(
        image,
        command=["sleep", "3600"],
        name="sdk-sleeper",
        mode=ServiceMode("replicated", replicas=1),
        stop_grace_period=1000000000,
        secrets=[docker.types.SecretReference(secret.id, "sdk-user-secret")],
        labels={"owner": "sdk"},
    )
    assert len(svc.id) == 25
    svc.reload()
    spec = svc.attrs["Spec"]
    assert spec["Name"] == "sdk-sleeper"
    assert spec["Labels"] == {"owner": "sdk"}
    assert spec["Mode"] == {"Replicated": {"Replicas": 1}}
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == image
    assert spec["TaskTemplate"]["ContainerSpec"]["Command"] == ["sleep", "3600"]
    assert spec["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["SecretName"] == "sdk-user-secret"

    wait_for("one running task", lambda: len(running_tasks(svc)) == 1)
    task = running_tasks(svc)[0]
    assert task["ServiceID"] == svc.id
    assert task["NodeID"] == swarm
    assert task["Slot"] == 1
    assert task["Status"]["ContainerStatus"]["ContainerID"]
    tasks = client.api.tasks(filters={"service": "sdk-sleeper"})
    assert task["ID"] in [t["ID"] for t in tasks]
    assert client.api.inspect_task(task["ID"])["ID"] == task["ID"]

    with pytest.raises(docker.errors.APIError) as err:
        secret.remove()
    assert err.value.status_code == 400
    assert "is in use by the following service: sdk-sleeper" in err.value.explanation

    with pytest.raises(docker.errors.APIError) as err:
        client.services.create(image, command=["sleep", "1"], name="sdk-sleeper")
    assert err.value.status_code == 409

    assert svc.scale(2) == {"Warnings": None}
    wait_for("two running tasks", lambda: len(running_tasks(svc)) == 2)
    svc.reload()
    assert svc.attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 2

    svc.update(env=["A=1"], endpoint_spec=EndpointSpec(mode="vip"))
    svc.reload()
    assert svc.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"] == ["A=1"]
    assert [s.id for s in client.services.list(filters={"name": "sdk-sleeper"})] == [svc.id]
    assert [s.id for s in client.services.list(filters={"label": "owner=sdk"})] == [svc.id]

    svc.remove()
    assert client.services.list(filters={"name": "sdk-sleeper"}) == []
    with pytest.raises(docker.errors.NotFound) as err:
        client.services.get("sdk-sleeper")
    assert err.value.explanation == "service sdk-sleeper not found"
    wait_for("secret free", lambda: _try_remove(secret))


def _try_remove(obj):
    try:
        obj.remove()
        return True
    except docker.errors.APIError:
        return False


def test_service_validation_errors(client, swarm, image):
    with pytest.raises(docker.errors.APIError) as err:
        client.services.create(image, command=["sleep", "1"], name="bad_name!")
    assert err.value.status_code == 400
    assert "name must be valid as a DNS name component" in err.value.explanation
    with pytest.raises(docker.errors.NotFound):
        client.services.get("nosuch")
    with pytest.raises(docker.errors.NotFound):
        client.api.inspect_task("nosuch")
