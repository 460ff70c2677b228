#!/usr/bin/env bash
# `make helm-check`: checks helm/palaver, deploy/ and their overlays, offline.
#
#   1. every value documented (## @param), in values.schema.json and README.md's table;
#   2. helm lint --strict with each overlay;
#   3. helm template with each overlay, for the oldest Kubernetes the chart supports and
#      the newest the kubernetes-validate package has schemas for; NOTES.txt too;
#   4. every rendered object validated against that version's Kubernetes schemas
#      (strict), plus what the chart promises (helm/ci/validate.py);
#   5. checkov on every rendered overlay and on deploy/Dockerfile: no failed check (the
#      few skips carry their reason in the template or the Dockerfile);
#   6. the OpenTelemetry collector config wires only components it defines;
#   7. cases that must fail do: a misspelt value, a grace period shorter than the drain,
#      no backend Secret, a writable root file system, an unknown field, a privilege
#      escalation — so none of the checks above passes by doing nothing.
#
# Tools come from scripts/deps.sh helm (under .tools); the rendered manifests are left in
# target/helm-check for a look (HELM_CHECK_OUT moves them; checkov skips any path with a
# hidden directory in it, so not under .tools).
set -euo pipefail
cd "$(dirname "$0")/../.."

TOOLS="${PALAVER_TOOLS:-$PWD/.tools}"
HELM="$TOOLS/bin/helm"
PY="$TOOLS/venv/bin/python"
CHECKOV="$TOOLS/venv/bin/checkov"
CHART=helm/palaver
OUT="$(realpath -m "${HELM_CHECK_OUT:-target/helm-check}")"
RELEASE=palaver
NAMESPACE=palaver

for tool in "$HELM" "$PY" "$CHECKOV"; do
    [[ -x "$tool" ]] || { echo "helm-check: $tool is missing: run bash scripts/deps.sh helm" >&2; exit 1; }
done

# name|values files
OVERLAYS=(
    "default|"
    "ha|-f $CHART/values-ha.yaml"
    "tryout|-f $CHART/values-tryout.yaml"
    "small|-f deploy/values-small.yaml"
    "large|-f $CHART/values-ha.yaml -f deploy/values-large.yaml"
    "everything|-f $CHART/values-tryout.yaml -f helm/ci/values-everything.yaml"
)
MIN_KUBE="$(sed -n 's/^kubeVersion: ">=\([0-9.]*\).*/\1/p' "$CHART/Chart.yaml")"
MAX_KUBE="$("$PY" -c 'import kubernetes_validate.utils as u; print(u.latest_version())')"
KUBE_VERSIONS=("$MIN_KUBE" "$MAX_KUBE")

rm -rf "$OUT"
mkdir -p "$OUT/rendered" "$OUT/checkov" "$OUT/logs"
passed=0
failed=0

# step NAME COMMAND…: runs it, shows its output only when it fails.
step() {
    local name="$1" log="$OUT/logs/${1//[^a-zA-Z0-9._-]/_}.log"
    shift
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        echo "ok    $name"
    else
        failed=$((failed + 1))
        echo "FAIL  $name"
        sed 's/^/      /' "$log"
    fi
}

# must_fail NAME PATTERN COMMAND…: the command must fail, saying PATTERN.
must_fail() {
    local name="$1" pattern="$2" log="$OUT/logs/must-fail-${1//[^a-zA-Z0-9._-]/_}.log"
    shift 2
    if "$@" >"$log" 2>&1; then
        failed=$((failed + 1))
        echo "FAIL  $name: it passed"
    elif grep -qE -- "$pattern" "$log"; then
        passed=$((passed + 1))
        echo "ok    $name"
    else
        failed=$((failed + 1))
        echo "FAIL  $name: it failed without saying /$pattern/"
        sed 's/^/      /' "$log"
    fi
}

# checkov_clean ARGS…: checkov must have run checks (it skips what it cannot see without
# a word) and failed none.
checkov_clean() {
    local output
    output="$("$CHECKOV" --skip-download --compact --quiet "$@" 2>&1)" || { echo "$output"; return 1; }
    echo "$output" | grep -E "^Passed checks: [1-9][0-9]*, Failed checks: 0," || { echo "$output"; return 1; }
}

render() { # render OUTFILE KUBE_VERSION VALUES_ARGS…
    local file="$1" version="$2"
    shift 2
    "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --kube-version "$version" "$@" >"$file"
}

# NOTES.txt is not rendered by `helm template`: render a copy of the chart in which it
# is a named template written out as a value.
notes_chart="$OUT/notes-chart"
cp -r "$CHART" "$notes_chart"
{
    echo '{{- define "palaver.check.notes" -}}'
    cat "$CHART/templates/NOTES.txt"
    echo '{{- end -}}'
} >"$notes_chart/templates/_notes.tpl"
rm "$notes_chart/templates/NOTES.txt"
echo 'notes: {{ include "palaver.check.notes" . | toJson }}' >"$notes_chart/templates/zz-notes.yaml"
notes() { # notes VALUES_ARGS…
    "$HELM" template "$RELEASE" "$notes_chart" --namespace "$NAMESPACE" \
        --show-only templates/zz-notes.yaml "$@" |
        "$PY" -c 'import sys, yaml; n = yaml.safe_load(sys.stdin)["notes"]; assert "Palaver" in n and "ADMIN_TOKEN" in n, n; print(n)'
}

echo "helm-check: $("$HELM" version --short), kubernetes-validate schemas $MIN_KUBE and $MAX_KUBE, checkov $("$CHECKOV" --version)"

step "values documented, in the schema and README.md" "$PY" helm/ci/values_doc.py check

for overlay in "${OVERLAYS[@]}"; do
    name="${overlay%%|*}"
    read -r -a args <<<"${overlay#*|}"
    step "lint $name" "$HELM" lint --strict "$CHART" --namespace "$NAMESPACE" "${args[@]}"
    for version in "${KUBE_VERSIONS[@]}"; do
        step "template $name (Kubernetes $version)" render "$OUT/rendered/$name-$version.yaml" "$version" "${args[@]}"
    done
    step "NOTES.txt $name" notes "${args[@]}"
    cp "$OUT/rendered/$name-$MAX_KUBE.yaml" "$OUT/checkov/$name.yaml"
done

for version in "${KUBE_VERSIONS[@]}"; do
    step "validate every object (Kubernetes $version)" "$PY" helm/ci/validate.py --kube-version "$version" "$OUT"/rendered/*-"$version".yaml
done

# --skip-download: no network (checkov would fetch guidelines from its vendor).
step "checkov, rendered manifests" checkov_clean --directory "$OUT/checkov" --framework kubernetes
step "checkov, deploy/Dockerfile" checkov_clean --file deploy/Dockerfile --framework dockerfile

step "deploy/otel-collector.yaml pipelines" "$PY" - deploy/otel-collector.yaml <<'EOF'
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
for name, pipeline in config["service"]["pipelines"].items():
    for kind in ("receivers", "processors", "exporters"):
        for component in pipeline.get(kind, []):
            assert component in (config.get(kind) or {}), f"pipeline {name}: {kind} {component} is not defined"
    assert pipeline.get("receivers") and pipeline.get("exporters"), f"pipeline {name} is incomplete"
print("ok")
EOF

must_fail "a misspelt value is refused" "Additional property replica is not allowed" \
    render /dev/null "$MAX_KUBE" --set identity.replica=3
must_fail "a grace period within the drain is refused" "must be longer than" \
    render /dev/null "$MAX_KUBE" --set gateway.terminationGracePeriodSeconds=30
must_fail "no backend Secret is refused" "externalDatabase.existingSecret" \
    render /dev/null "$MAX_KUBE" --set externalDatabase.existingSecret=
bad="$OUT/bad"
mkdir -p "$bad"
render "$bad/writable.yaml" "$MAX_KUBE" --set containerSecurityContext.readOnlyRootFilesystem=false
must_fail "validate catches a writable root file system" "root file system is writable" \
    "$PY" helm/ci/validate.py --kube-version "$MAX_KUBE" "$bad/writable.yaml"
render "$bad/unknown-field.yaml" "$MAX_KUBE" \
    --set-json 'identity.extraEnv=[{"name":"X","valueFrom":{"secretKeyRef":{"name":"s","key":"k","bogus":true}}}]'
must_fail "validate catches an unknown field" "bogus" \
    "$PY" helm/ci/validate.py --kube-version "$MAX_KUBE" "$bad/unknown-field.yaml"
mkdir -p "$bad/checkov"
render "$bad/checkov/escalation.yaml" "$MAX_KUBE" --set containerSecurityContext.allowPrivilegeEscalation=true
must_fail "checkov catches a privilege escalation" "CKV_K8S_20" \
    checkov_clean --directory "$bad/checkov" --framework kubernetes

echo "helm-check: $passed passed, $failed failed"
((failed == 0))
