# Secrets and configs (files are made in $WORK, the current directory).
docker swarm init --advertise-addr 127.0.0.1
printf 'pw1' >s1.txt
printf 'listen=80\n' >c1.conf
docker secret create s1 s1.txt
printf 'pw2' | docker secret create --label env=prod s2 -
docker secret ls
docker secret ls --filter name=s1
docker secret ls --filter label=env=prod
docker secret ls --filter label=env
docker secret ls -q
docker secret inspect s1
docker secret inspect --pretty s2
docker secret create s1 s1.txt
head -c 600000 /dev/zero | tr '\0' a >big.bin
docker secret create big big.bin
docker secret create 'bad name' s1.txt
docker config create c1 c1.conf
printf 'x=1' | docker config create --label app=x c2 -
docker config ls
docker config ls --filter name=c
docker config ls --filter label=app=x
docker config inspect c1
docker config inspect --pretty c1
docker config create c1 c1.conf
docker config create okbig big.bin
head -c 1100000 /dev/zero | tr '\0' a >huge.bin
docker config create huge huge.bin
docker config create 'bad name' c1.conf
docker service create -d --name user --secret s1 --config source=c1,target=/etc/c1.conf,mode=0440 \
    --stop-grace-period 1s shoal-test/busybox sleep 3600
docker service create -d --name user2 --secret does_not_exist shoal-test/busybox sleep 3600
docker secret rm s1
docker config rm c1
docker service rm user
docker secret rm s1 s2
docker config rm c1 c2 okbig
docker secret inspect nosuch
docker config rm nosuch
docker secret ls
docker swarm leave --force
