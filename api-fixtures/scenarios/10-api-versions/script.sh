# Older API versions through the CLI, then raw bodies through curl.
post() { # post PATH BODY
    curl -s -i --unix-socket "$SOCK" -X POST -H 'Content-Type: application/json' -d "$2" "http://localhost$1"; echo
}
get() { curl -s -i --unix-socket "$SOCK" "http://localhost$1"; echo; }

DOCKER_API_VERSION=1.30 docker swarm init --advertise-addr 127.0.0.1
for v in 1.30 1.35 1.41; do
    n=${v/./}
    DOCKER_API_VERSION=$v docker info --format '{{.Swarm.LocalNodeState}} {{.KernelMemory}}'
    DOCKER_API_VERSION=$v docker service create -d --name cli$n --env X=1 --limit-cpu 0.2 shoal-test/busybox sleep 3600
    DOCKER_API_VERSION=$v docker service create -d --name job$n --mode replicated-job shoal-test/busybox true
    DOCKER_API_VERSION=$v docker service create -d --name cap$n --cap-add NET_ADMIN shoal-test/busybox sleep 3600
    DOCKER_API_VERSION=$v docker service inspect cli$n
    DOCKER_API_VERSION=$v docker service ls
    DOCKER_API_VERSION=$v docker node ls
    echo x | DOCKER_API_VERSION=$v docker secret create --template-driver golang tpl$n -
    DOCKER_API_VERSION=$v docker service rm cli$n job$n
done
docker service rm cap141

# /info at several versions.
for v in 1.24 1.30 1.38 1.41; do get /v$v/info >/dev/null; done
get /v1.24/info
get /v1.41/info

# Raw specs: newer fields under older prefixes, jobs, empty and zero fields.
post /v1.40/services/create '{"Name":"old40","TaskTemplate":{"ContainerSpec":{"Image":"shoal-test/busybox","Args":["sleep","3600"],"CapabilityAdd":["NET_ADMIN"],"Sysctls":{"net.core.somaxconn":"100"}},"Resources":{"Limits":{"Pids":3}},"Placement":{"MaxReplicas":2}},"Mode":{"ReplicatedJob":{}}}'
post /v1.35/services/create '{"Name":"old35","TaskTemplate":{"ContainerSpec":{"Image":"shoal-test/busybox","Args":["sleep","3600"],"Sysctls":{"net.core.somaxconn":"100"}},"Placement":{"MaxReplicas":2}},"Mode":{"GlobalJob":{}},"UpdateConfig":{}}'
post /v1.41/services/create '{"Name":"shape1","TaskTemplate":{"ContainerSpec":{"Image":"shoal-test/busybox","Args":[],"Env":[],"Labels":{},"Privileges":{},"DNSConfig":{"Nameservers":[]},"Mounts":[{"Source":"/tmp","Target":"/y","BindOptions":{}},{"Type":"tmpfs","Target":"/z","TmpfsOptions":{"SizeBytes":0}}],"TTY":false},"Placement":{"Constraints":[]},"Resources":{"Limits":{"NanoCPUs":0},"Reservations":{}},"RestartPolicy":{},"LogDriver":{"Name":"","Options":{}},"Networks":[]},"UpdateConfig":{"Delay":0},"RollbackConfig":{"Parallelism":2,"Monitor":0},"EndpointSpec":{"Ports":[{"TargetPort":80}]},"Mode":{"Replicated":{"Replicas":0}}}'
post /v1.41/services/create '{"Name":"shape2","TaskTemplate":{"ContainerSpec":{"Image":"shoal-test/busybox"}},"Mode":{"Replicated":{"Replicas":0}}}'
post /v1.41/services/create '{"Name":"shape3","TaskTemplate":{"ContainerSpec":{"Image":"shoal-test/busybox","Privileges":{"SELinuxContext":{"Disable":true}}}},"Mode":{"Replicated":{"Replicas":0}}}'
post /v1.41/services/create '{"Name":"jobupd","TaskTemplate":{"ContainerSpec":{"Image":"shoal-test/busybox"}},"Mode":{"ReplicatedJob":{}},"UpdateConfig":{"Parallelism":0}}'
for s in old40 old35 shape1 shape2 shape3; do
    get /v1.41/services/$s
    get "/v1.41/services/$s?insertDefaults=true"
done
get /v1.30/services/shape2

# Secret and config references.
sid=$(echo pw | docker secret create realsec -)
post /v1.41/services/create '{"Name":"r1","TaskTemplate":{"ContainerSpec":{"Image":"shoal-test/busybox","Secrets":[{"SecretID":"madeupsecretid0000000000a","SecretName":"nosuch","File":{"Name":"a","UID":"0","GID":"0","Mode":292}}]}}}'
post /v1.41/services/create "{\"Name\":\"r2\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":\"shoal-test/busybox\",\"Secrets\":[{\"SecretID\":\"$sid\",\"SecretName\":\"wrongname\",\"File\":{\"Name\":\"a\"}},{\"SecretID\":\"m2\",\"SecretName\":\"n2\",\"File\":{\"Name\":\"b\"}}]}}}"
post /v1.41/services/create '{"Name":"r3","TaskTemplate":{"ContainerSpec":{"Image":"shoal-test/busybox","Configs":[{"ConfigID":"zz","ConfigName":"nocfg","File":{"Name":"a"}}]}}}'
post /v1.41/services/create '{"Name":"r4","TaskTemplate":{"ContainerSpec":{"Image":"shoal-test/busybox","Secrets":[{"SecretName":"s","File":{"Name":"a"}}]}}}'
post /v1.41/services/create '{"Name":"r5","TaskTemplate":{"ContainerSpec":{"Image":"shoal-test/busybox","Secrets":[{"SecretID":"i","SecretName":"s"}]}}}'
post /v1.41/services/create '{"Name":"r6","TaskTemplate":{"ContainerSpec":{"Image":"shoal-test/busybox","Secrets":[{"SecretID":"i","SecretName":"s","File":{}}]}}}'
post /v1.41/services/create '{"Name":"r7","TaskTemplate":{"ContainerSpec":{"Image":"shoal-test/busybox","Configs":[{"ConfigID":"i","ConfigName":"c"}]}}}'
post /v1.41/services/create '{"Name":"r8","TaskTemplate":{"ContainerSpec":{"Image":"shoal-test/busybox","Secrets":[{"SecretID":"a","SecretName":"s1","File":{"Name":"t"}},{"SecretID":"b","SecretName":"s2","File":{"Name":"t"}}]}}}'
docker service create -d --name withsec --secret realsec shoal-test/busybox sleep 3600
docker service update -d --secret-add nosuch withsec || true
spec=$(curl -s --unix-socket "$SOCK" http://localhost/v1.41/services/withsec | jq -c '.Spec | .TaskTemplate.ContainerSpec.Secrets[0].SecretID = "madeupsecretid0000000000a"')
version=$(curl -s --unix-socket "$SOCK" http://localhost/v1.41/services/withsec | jq .Version.Index)
post "/v1.41/services/withsec/update?version=$version" "$spec"
docker service rm withsec shape1 shape2 shape3 old40 old35
docker secret rm realsec
docker swarm leave --force
