#!/bin/bash

# Same command line as upstream's generated /usr/bin/tf_serving_entrypoint.sh:
# defaults first, then the container's arguments (the last flag wins).
# Upstream does not `exec`, so bash stays PID 1 and SIGTERM never reaches the
# server (docker stop waits for its timeout). The double execs, so the server
# gets the signal and `docker stop` returns at once.
exec tensorflow_model_server --port=8500 --rest_api_port=8501 --model_name=${MODEL_NAME} --model_base_path=${MODEL_BASE_PATH}/${MODEL_NAME} "$@"
