# Error paths.
docker swarm init --advertise-addr 127.0.0.1
docker service inspect nosuch
docker service rm nosuch
docker service update -d --replicas 2 nosuch
docker service scale nosuch=2
docker service rollback nosuch
docker service ps nosuch
docker node inspect nosuch
docker secret inspect nosuch
docker config inspect nosuch
docker network inspect nosuch
docker service create -d --name dup --stop-grace-period 1s shoal-test/busybox sleep 3600
docker service create -d --name dup shoal-test/busybox sleep 3600
docker service create -d --name 'bad_name!' shoal-test/busybox sleep 3600
docker service create -d --name cons --constraint 'a=b' shoal-test/busybox sleep 3600
docker service create -d --name img 'Busy:Box' sleep 3600
docker service create -d --name mem --limit-memory 1k shoal-test/busybox sleep 3600
docker service update -d --image '' dup
docker service rollback dup
# Stale version: post the current spec with version 1.
spec=$(curl -s --unix-socket "$SOCK" http://localhost/v1.41/services/dup | jq -c .Spec)
curl -s -i --unix-socket "$SOCK" -X POST -H 'Content-Type: application/json' -d "$spec" \
    'http://localhost/v1.41/services/dup/update?version=1'; echo
# Rename through update.
renamed=$(echo "$spec" | jq -c '.Name = "renamed"')
version=$(curl -s --unix-socket "$SOCK" http://localhost/v1.41/services/dup | jq .Version.Index)
curl -s -i --unix-socket "$SOCK" -X POST -H 'Content-Type: application/json' -d "$renamed" \
    "http://localhost/v1.41/services/dup/update?version=$version"; echo
# Malformed bodies and filters.
curl -s -i --unix-socket "$SOCK" -X POST -H 'Content-Type: application/json' -d '{}' \
    http://localhost/v1.41/services/create; echo
curl -s -i --unix-socket "$SOCK" -X POST -H 'Content-Type: application/json' -d '{"Name":"x","TaskTemplate":' \
    http://localhost/v1.41/services/create; echo
curl -s -i --unix-socket "$SOCK" -G --data-urlencode 'filters={"bogus":{"x":true}}' http://localhost/v1.41/services; echo
curl -s -i --unix-socket "$SOCK" -G --data-urlencode 'filters=notjson' http://localhost/v1.41/services; echo
curl -s -i --unix-socket "$SOCK" -X POST -H 'Content-Type: application/json' -d '{"Name":"s","Data":"!!"}' \
    http://localhost/v1.41/secrets/create; echo
docker service rm dup
docker swarm leave --force
