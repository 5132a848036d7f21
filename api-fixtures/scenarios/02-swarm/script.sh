# Swarm lifecycle on one node.
docker swarm leave
docker node ls
docker secret ls
docker swarm unlock-key
docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 \
    --task-history-limit 4 --default-addr-pool 10.20.0.0/16 --default-addr-pool-mask-length 24 \
    --cert-expiry 2160h --dispatcher-heartbeat 10s
docker swarm init --advertise-addr 127.0.0.1
docker info
docker swarm join-token worker
docker swarm join-token manager
docker swarm join-token -q worker
docker swarm join-token --rotate worker
docker swarm join-token --rotate -q manager
docker swarm update --task-history-limit 3
docker swarm update --cert-expiry 1m
docker swarm unlock-key
docker swarm update --autolock=true
docker swarm unlock-key
docker swarm unlock-key -q
docker swarm unlock-key --rotate
docker swarm update --autolock=false
docker swarm leave
docker swarm leave --force
docker info
