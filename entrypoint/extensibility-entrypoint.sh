#!/bin/sh
# Container ENTRYPOINT: prepare the deployment's extra packages, then exec the server.
#   extensibility-entrypoint                 -> azmlinfsrv --entry_script ... (the default)
#   extensibility-entrypoint CMD [ARGS...]   -> CMD ARGS in the prepared environment
# `exec` all the way down keeps one PID, so the server is PID 1 and gets the container's
# signals itself. Errors exit at once with their code (the old script slept 45 s first).
set -eu

fail() {
    # 96, as for a missing scoring server: the image lacks what starts it
    echo "extensibility-entrypoint: $1" >&2
    exit 96
}

# `${1+--}`: a `--` only when a command follows; `run` alone starts the default server.
if [ -n "${EXTENSIBILITY_PYTHON:-}" ]; then
    # For images whose Python scripts folder is not on PATH. Only checked to be executable:
    # importing the package here would cost a second interpreter start on every start.
    case "$EXTENSIBILITY_PYTHON" in
        */*) [ -f "$EXTENSIBILITY_PYTHON" ] && [ -x "$EXTENSIBILITY_PYTHON" ] ;;
        *) command -v "$EXTENSIBILITY_PYTHON" >/dev/null 2>&1 ;;
    esac || fail "EXTENSIBILITY_PYTHON=$EXTENSIBILITY_PYTHON is not an executable; set it to the image's Python (the one inference-extensibility is installed in) or unset it"
    set -- "$EXTENSIBILITY_PYTHON" -m extensibility run ${1+--} "$@"
elif command -v extensibility >/dev/null 2>&1; then
    set -- extensibility run ${1+--} "$@"
else
    fail "the 'extensibility' command is not on PATH; install inference-extensibility into the image's Python, or set EXTENSIBILITY_PYTHON to that Python"
fi
exec "$@"
