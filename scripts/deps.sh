#!/usr/bin/env bash
# Installs what Palaver's tests need when it is missing, and nothing when it is there:
# PostgreSQL's server binaries (initdb, pg_ctl) and nats-server, which the test harness
# starts on its own when none is reachable, and cargo-nextest, which runs the tests.
set -euo pipefail

missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v nats-server >/dev/null || missing+=(nats-server)

if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "deps: installing cargo-nextest"
    cargo install --locked cargo-nextest
fi
echo "deps: ok"
