# Nodes on a one-node swarm.
docker swarm init --advertise-addr 127.0.0.1
docker node ls
docker node ls -q
docker node ls --filter role=manager
docker node ls --filter role=worker
docker node inspect self
docker node inspect --pretty self
NODE=$(docker node ls -q)
docker node update --label-add env=test --label-add tier=front "$NODE"
docker node update --label-rm tier "$NODE"
docker node ls --filter node.label=env=test
docker node update --availability drain "$NODE"
docker node update --availability active "$NODE"
docker node update --availability bogus "$NODE"
docker node promote "$NODE"
docker node demote "$NODE"
docker node update --role worker "$NODE"
docker node rm "$NODE"
docker node rm --force "$NODE"
docker node ps self
docker node inspect nosuch
docker node rm nosuch
docker node inspect "$NODE"
docker swarm leave --force
