# Services on a one-node swarm (stop grace 1s: busybox as PID 1 ignores SIGTERM).
docker swarm init --advertise-addr 127.0.0.1
docker service create -d --name sleeper --stop-grace-period 1s shoal-test/busybox sleep 3600
docker service create --name web --replicas 2 --stop-grace-period 1s shoal-test/busybox httpd -f -p 80
docker service create -d --name talker --stop-grace-period 1s shoal-test/busybox \
    sh -c 'echo hello out; echo hello err >&2; exec sleep 3600'
docker service ls
docker service ls --filter name=web
docker service ls -q
docker service ps web
docker service ps --no-trunc sleeper
docker service inspect web
docker service inspect --pretty web
docker service update --env-add FOO=bar web
docker service update -d --image shoal-test/busybox:latest --env-add A=1 sleeper
docker service update -d --publish-add published=8080,target=80,mode=host sleeper
docker service scale web=3
docker service update -d --replicas 2 sleeper
docker service rollback web
sleep 2
docker service logs --tail 5 talker
docker service logs --tail 2 --timestamps talker
docker service logs nosuch
docker service inspect nosuch
docker service create -d --name sleeper shoal-test/busybox sleep 1
docker service rm web sleeper talker
docker service ls
docker swarm leave --force
