# docker stack deploy of a compose 3.8 file ($SCENARIO/stack.yml).
printf 'secret-pw' >db_pass.txt
printf 'answer=42\n' >app.conf
sed 's/REPLICAS/1/' "$SCENARIO/stack.yml" >stack.yml
docker stack deploy -c stack.yml demo
docker swarm init --advertise-addr 127.0.0.1
docker stack deploy -c stack.yml demo
sleep 5
docker stack ls
docker stack services demo
docker stack ps demo
sed 's/REPLICAS/2/' "$SCENARIO/stack.yml" >stack.yml
docker stack deploy -c stack.yml demo
sleep 3
docker stack services demo
docker stack rm demo
sleep 5
docker stack ls
docker swarm leave --force
