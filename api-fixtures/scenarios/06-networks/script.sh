# Overlay networks.
docker swarm init --advertise-addr 127.0.0.1
docker network create --driver overlay ov1
docker network create -d overlay --attachable --subnet 10.30.0.0/24 --gateway 10.30.0.1 --label team=a ov2
docker network create -d overlay --opt encrypted ov3
docker network create -d overlay ov1
docker network create -d overlay --subnet 10.0.0.0/33 badnet
docker network ls
docker network ls --filter driver=overlay
docker network ls --filter scope=swarm
docker network ls --filter label=team=a
docker network inspect ov1 ov2
docker network inspect ov3
docker service create -d --name netuser --network ov1 --stop-grace-period 1s shoal-test/busybox sleep 3600
docker service create -d --name nonet --network nosuch shoal-test/busybox sleep 3600
sleep 3
docker network rm ov1
docker service rm netuser
docker network rm ov2 ov3
docker network rm nosuch
docker network inspect nosuch
sleep 5
docker network rm ov1
docker swarm leave --force
