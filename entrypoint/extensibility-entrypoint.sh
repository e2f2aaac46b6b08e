#!/bin/sh
# Container ENTRYPOINT: prepare the deployment's extra packages, then exec the server.
#   extensibility-entrypoint                 -> azmlinfsrv --entry_script ... (the default)
#   extensibility-entrypoint CMD [ARGS...]   -> CMD ARGS in the prepared environment
# `exec` all the way down keeps one PID, so the server gets the container's signals itself.
set -eu

if [ -n "${EXTENSIBILITY_PYTHON:-}" ]; then
    # for images whose Python scripts folder is not on PATH
    set -- "$EXTENSIBILITY_PYTHON" -m extensibility run ${1+--} "$@"
elif command -v extensibility >/dev/null 2>&1; then
    set -- extensibility run ${1+--} "$@"
else
    echo "extensibility-entrypoint: the 'extensibility' command is not on PATH; install azureml-extensibility into the image's Python or set EXTENSIBILITY_PYTHON to that Python" >&2
    exit 96
fi
exec "$@"
