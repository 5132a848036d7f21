# Version negotiation and system routes. Runs with DOCKER_HOST and SOCK set
# to the recording proxy (see ../../record.sh).
docker version
docker info
# HEAD and GET /_ping, unversioned.
curl -s -I --unix-socket "$SOCK" http://localhost/_ping
curl -s --unix-socket "$SOCK" http://localhost/_ping; echo
curl -s --unix-socket "$SOCK" http://localhost/v1.41/_ping; echo
# Unknown route, version prefixes too new and too old, unversioned and old.
curl -s -i --unix-socket "$SOCK" http://localhost/v1.41/nosuchroute; echo
curl -s -i --unix-socket "$SOCK" http://localhost/v1.99/version; echo
curl -s -i --unix-socket "$SOCK" http://localhost/v1.11/version; echo
curl -s --unix-socket "$SOCK" http://localhost/version; echo
curl -s --unix-socket "$SOCK" http://localhost/v1.24/version; echo
# Swarm-only calls outside a swarm.
docker node ls
docker service ls
docker swarm join-token worker
curl -s -i --unix-socket "$SOCK" http://localhost/v1.41/swarm; echo
curl -s -i --unix-socket "$SOCK" http://localhost/v1.41/tasks; echo
