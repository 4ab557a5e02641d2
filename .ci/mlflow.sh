# Sourced by .ci/run after the project is installed (mlflow comes with the dev extra). Starts a throw-away
# `mlflow server` (SQLite backend, artifacts in a temp folder) on 127.0.0.1 and exports
# NNTRAIN_TEST_MLFLOW=http://127.0.0.1:PORT for tests/test_tracking.py. Any failure only prints a warning: the
# variable stays unset and the server test skips. The server is stopped and the folder removed on exit (after
# whatever EXIT trap was set before, PostgreSQL's). First port tried: NNTRAIN_MLFLOW_PORT (default 55500).

_ml_warn() { echo "WARNING: .ci/mlflow.sh: $*; the MLflow server test will be skipped" >&2; }

_ml_stop() {
    [ -n "${_ML_TMP:-}" ] || return 0
    if [ -n "${_ML_PID:-}" ]; then
        kill -- "-$_ML_PID" 2>/dev/null || kill "$_ML_PID" 2>/dev/null || true  # its group: uvicorn's workers too
        wait "$_ML_PID" 2>/dev/null || true
    fi
    rm -rf "$_ML_TMP"
    _ML_TMP=
}

_ml_start() {
    command -v mlflow >/dev/null || { _ml_warn "no mlflow command (is the dev extra installed?)"; return 1; }
    local port=${NNTRAIN_MLFLOW_PORT:-55500} last=$(( ${NNTRAIN_MLFLOW_PORT:-55500} + 50 ))
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        port=$((port + 1)); [ "$port" -le "$last" ] || { _ml_warn "no free port"; return 1; }
    done
    _ML_TMP=$(mktemp -d) || return 1
    setsid mlflow server --host 127.0.0.1 --port "$port" --workers 1 \
        --backend-store-uri "sqlite:///$_ML_TMP/mlflow.db" --artifacts-destination "$_ML_TMP/artifacts" \
        >"$_ML_TMP/server.log" 2>&1 &
    _ML_PID=$!
    local waited=0
    until curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; do
        kill -0 "$_ML_PID" 2>/dev/null || { tail -20 "$_ML_TMP/server.log" >&2; _ml_warn "the server exited"; return 1; }
        sleep 1; waited=$((waited + 1))
        [ "$waited" -lt 180 ] || { tail -20 "$_ML_TMP/server.log" >&2; _ml_warn "no answer in 180 s"; return 1; }
    done
    export NNTRAIN_TEST_MLFLOW="http://127.0.0.1:$port"
    echo ".ci/mlflow.sh: mlflow $(mlflow --version | awk '{print $NF}') server up in ${waited} s, NNTRAIN_TEST_MLFLOW=$NNTRAIN_TEST_MLFLOW" >&2
}

_ml_before=$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT$//")
trap "_ml_stop; ${_ml_before:-:}" EXIT
if [ -z "${NNTRAIN_TEST_MLFLOW:-}" ] && ! _ml_start; then
    _ml_stop
    unset NNTRAIN_TEST_MLFLOW
fi
