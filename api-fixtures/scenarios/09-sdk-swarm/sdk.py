"""Drives the Python SDK through its swarm methods, one call per step.

Errors a step meets (as dockerd answers) are printed, not raised, so the
recording goes on.
"""
import docker
from docker.types import (DNSConfig, EndpointSpec, Healthcheck, Resources, RestartPolicy,
                          RollbackConfig, SecretReference, ConfigReference, ServiceMode,
                          UpdateConfig)

c = docker.from_env(version="auto")
IMAGE = "shoal-test/busybox:latest"


def step(what, f):
    try:
        r = f()
        print(what, "ok", r if isinstance(r, (str, bool, int)) or r is None else "")
        return r
    except docker.errors.APIError as e:
        print(what, "error", e.status_code, e.explanation)
        return None


step("swarm.init", lambda: c.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377"))
step("swarm.reload", lambda: c.swarm.reload())
step("swarm.update", lambda: c.swarm.update(snapshot_interval=5000, task_history_retention_limit=3,
                                             dispatcher_heartbeat_period=6000000000, labels={"env": "t"}))
step("swarm.unlock_key", lambda: c.api.get_unlock_key())
step("swarm.join_tokens", lambda: c.api.inspect_swarm()["JoinTokens"] and True)
step("swarm.rotate", lambda: c.swarm.update(rotate_worker_token=True))
step("swarm.init again", lambda: c.swarm.init(advertise_addr="127.0.0.1"))

node = c.nodes.list()[0]
step("nodes.list filters", lambda: len(c.nodes.list(filters={"role": "manager"})))
step("node.update", lambda: node.update({"Availability": "active", "Role": "manager", "Labels": {"zone": "a"}}))
step("nodes.get", lambda: c.nodes.get(node.id).attrs["Spec"] and True)

net = step("networks.create", lambda: c.networks.create("sdknet", driver="overlay", attachable=True,
                                                         labels={"l": "v"}))
sec = step("secrets.create", lambda: c.secrets.create(name="sdksec", data=b"pw", labels={"a": "b"}))
cfg = step("configs.create", lambda: c.configs.create(name="sdkcfg", data=b"cfg"))
step("secrets.list", lambda: len(c.secrets.list(filters={"name": "sdksec"})))
step("configs.get", lambda: c.configs.get("sdkcfg").name)
step("secrets.create duplicate", lambda: c.secrets.create(name="sdksec", data=b"pw"))

step("services.create minimal", lambda: c.services.create(IMAGE, ["sleep", "3600"], name="plain").id and True)
step("services.create full", lambda: c.services.create(
    IMAGE, ["sleep", "3600"], name="full", mode=ServiceMode("replicated", replicas=2),
    update_config=UpdateConfig(parallelism=2, delay=1000000000, order="start-first"),
    rollback_config=RollbackConfig(parallelism=1),
    restart_policy=RestartPolicy(condition="on-failure", delay=1000, max_attempts=2),
    endpoint_spec=EndpointSpec(mode="vip", ports={8082: 80}), env=["A=1"], labels={"l": "v"},
    container_labels={"c": "d"}, constraints=["node.role==manager"], preferences=[("spread", "node.id")],
    resources=Resources(cpu_limit=100000000, mem_reservation=10000000), stop_grace_period=1000000000,
    mounts=["/tmp:/t:ro"], hostname="h", healthcheck=Healthcheck(test=["CMD", "true"], interval=1000000000),
    log_driver="json-file", log_driver_options={"max-size": "1m"}, init=True, read_only=True,
    dns_config=DNSConfig(nameservers=["1.1.1.1"]), cap_add=["NET_ADMIN"], maxreplicas=2,
    sysctls={"net.core.somaxconn": "100"}, networks=["sdknet"],
    secrets=[SecretReference(sec.id, "sdksec")] if sec else [],
    configs=[ConfigReference(cfg.id, "sdkcfg", filename="/etc/app.conf")] if cfg else []).id and True)
step("services.create job", lambda: c.services.create(IMAGE, ["true"], name="job",
                                                       mode=ServiceMode("replicated-job", concurrency=1, replicas=1)).id and True)
step("services.create global", lambda: c.services.create(IMAGE, ["sleep", "3600"], name="glob", mode="global").id and True)
step("services.create unknown secret", lambda: c.services.create(
    IMAGE, name="badsec", secrets=[SecretReference("madeupsecretid0000000000a", "nosuch")]))
step("services.create duplicate", lambda: c.services.create(IMAGE, name="plain"))

step("services.get insertDefaults", lambda: c.api.inspect_service("plain", insert_defaults=True) and True)
step("services.list", lambda: len(c.services.list()))
step("services.list status", lambda: len(c.services.list(status=True)))
step("services.list filters", lambda: len(c.services.list(filters={"mode": "replicated"})))
step("service.update env", lambda: c.services.get("plain").update(env=["Z=1"]))
step("service.scale", lambda: c.services.get("full").scale(1))
step("service.force_update", lambda: c.services.get("plain").force_update())
step("service.update job", lambda: c.services.get("job").update(args=["true"]))
step("service.update rename", lambda: c.services.get("glob").update(name="glob2"))
step("services.get after", lambda: c.services.get("plain").attrs["Spec"] and True)

for name in ["plain", "full", "job", "glob"]:
    step("service.remove " + name, lambda: c.services.get(name).remove())
step("secret.remove", lambda: c.secrets.get("sdksec").remove())
step("config.remove", lambda: c.configs.get("sdkcfg").remove())
step("network.remove", lambda: c.networks.get("sdknet").remove())
step("swarm.leave", lambda: c.swarm.leave(force=True))
