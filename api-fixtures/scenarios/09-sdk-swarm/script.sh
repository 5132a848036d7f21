# The Python SDK's swarm methods ($SCENARIO/sdk.py); DOCKER_HOST is the proxy.
python3 "$SCENARIO/sdk.py"
