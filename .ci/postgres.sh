# Sourced by .ci/run (sourced, not run, so that the export and the EXIT trap reach the caller).
# Starts a throw-away PostgreSQL server on 127.0.0.1 in a temp folder and exports
# NNTRAIN_TEST_POSTGRES=postgresql://nntrain:nntrain@127.0.0.1:PORT/nntrain for the tests.
# Any failure (no network for apt, no free port, ...) only prints a warning: the variable
# stays unset and the PostgreSQL tests skip. The server is stopped and the folder removed on exit.
# Override the first port tried with NNTRAIN_PG_PORT (default 55432).

_pg_warn() { echo "WARNING: .ci/postgres.sh: $*; PostgreSQL tests will be skipped" >&2; }

# Run a PostgreSQL server program as user postgres when we are root (initdb/postgres refuse root).
_pg_as() {
    if [ "$(id -u)" = 0 ]; then (cd "$_PG_TMP" && runuser -u postgres -- "$@"); else "$@"; fi
}

_pg_stop() {
    [ -n "${_PG_TMP:-}" ] || return 0
    if [ -f "$_PG_TMP/data/postmaster.pid" ]; then
        _pg_as "$_PG_BIN/pg_ctl" -D "$_PG_TMP/data" -m fast -w stop >/dev/null || true
    fi
    rm -rf "$_PG_TMP"
    _PG_TMP=
}

_pg_start() {
    # Debian's packaged server, installed only if no version is there yet (CI runs as root).
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        [ "$(id -u)" = 0 ] || { _pg_warn "PostgreSQL is not installed and we are not root"; return 1; }
        echo ".ci/postgres.sh: installing postgresql with apt-get" >&2
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; } >&2 ||
            { _pg_warn "apt-get install postgresql failed (no network?)"; return 1; }
        # The package may have created and started a 'main' cluster on 5432: we do not use it.
        pg_lsclusters -h 2>/dev/null | awk '$4 == "online" {print $1, $2}' |
            while read -r v c; do pg_ctlcluster "$v" "$c" stop || true; done
    fi
    _PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1) || { _pg_warn "no PostgreSQL found"; return 1; }

    # First free port from NNTRAIN_PG_PORT (default 55432) on: nothing must answer on 127.0.0.1.
    local port=${NNTRAIN_PG_PORT:-55432} last=$(( ${NNTRAIN_PG_PORT:-55432} + 50 ))
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        port=$((port + 1)); [ "$port" -le "$last" ] || { _pg_warn "no free port"; return 1; }
    done

    # Data dir, socket and log all in a temp folder owned by the server's user.
    _PG_TMP=$(mktemp -d) || return 1
    [ "$(id -u)" != 0 ] || chown postgres: "$_PG_TMP" || return 1
    _pg_as "$_PG_BIN/initdb" -D "$_PG_TMP/data" -U postgres -A trust --auth-host=scram-sha-256 \
        -E UTF8 --locale=C --no-sync >"$_PG_TMP/initdb.log" 2>&1 ||
        { cat "$_PG_TMP/initdb.log" >&2; _pg_warn "initdb failed"; return 1; }
    # Throw-away data, so no durability (fsync off) for speed; TCP on loopback only.
    _pg_as "$_PG_BIN/pg_ctl" -D "$_PG_TMP/data" -l "$_PG_TMP/server.log" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $_PG_TMP -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        >/dev/null || { cat "$_PG_TMP/server.log" >&2; _pg_warn "server did not start"; return 1; }
    # Role and database for the tests, through the unix socket in the temp folder (trust auth).
    "$_PG_BIN/psql" -q -v ON_ERROR_STOP=1 -h "$_PG_TMP" -p "$port" -U postgres -d postgres \
        -c "CREATE ROLE nntrain LOGIN PASSWORD 'nntrain'" -c "CREATE DATABASE nntrain OWNER nntrain" ||
        { _pg_warn "could not create role/database"; return 1; }
    export NNTRAIN_TEST_POSTGRES="postgresql://nntrain:nntrain@127.0.0.1:$port/nntrain"
    echo ".ci/postgres.sh: PostgreSQL $("$_PG_BIN/postgres" -V | awk '{print $3}') up, NNTRAIN_TEST_POSTGRES=$NNTRAIN_TEST_POSTGRES" >&2
}

trap _pg_stop EXIT
# Called in a condition, so a failing step returns (each step is checked) instead of ending the CI.
if [ -z "${NNTRAIN_TEST_POSTGRES:-}" ] && ! _pg_start; then
    _pg_stop
    unset NNTRAIN_TEST_POSTGRES
fi
