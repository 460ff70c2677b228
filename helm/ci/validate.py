#!/usr/bin/env python3
"""Validates rendered manifests of helm/palaver (one `helm template` output per file).

    validate.py --kube-version 1.27.0 rendered/*.yaml

1. Every object against the Kubernetes JSON schemas of that version, strictly (unknown
   fields fail), with the schemas the kubernetes-validate package ships offline; the
   ServiceMonitor against servicemonitor.schema.json beside this file.
2. What the chart promises, across the objects of one file:
   - every pod runs non-root with a read-only root file system, every capability
     dropped, seccomp RuntimeDefault, no service-account token, requests and limits;
   - every long-running container has liveness and readiness probes, and a pod's grace
     period is longer than its preStop sleep plus PALAVER_DRAIN_SECONDS;
   - every PALAVER_*_URL names a headless Service on the right port that selects pods
     serving that port;
   - every Service, PodDisruptionBudget, HorizontalPodAutoscaler and Ingress points at
     something rendered; every ConfigMap, Secret and ServiceAccount a pod uses is
     rendered (or is an existing Secret the values name);
   - with NetworkPolicies on, every pod is isolated for ingress and egress, and only the
     gateway accepts traffic from anywhere.

Exits non-zero, naming each problem, when anything fails.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
WORKLOADS = ("Deployment", "StatefulSet", "Job")


def load(path):
    return [doc for doc in yaml.safe_load_all(Path(path).read_text()) if doc]


def name_of(obj):
    return f"{obj['kind']}/{obj['metadata']['name']}"


def selects(selector, labels):
    """Whether a label selector (matchLabels and matchExpressions) selects `labels`."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def pod_template(obj):
    return obj["spec"]["template"]


def validate_schemas(docs, version, problems):
    servicemonitor = json.loads((HERE / "servicemonitor.schema.json").read_text())
    for obj in docs:
        try:
            if obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["kind"] == "ServiceMonitor":
                jsonschema.validate(obj, servicemonitor)
            else:
                kubernetes_validate.validate(obj, version, strict=True)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
            where = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"{name_of(obj)}: {where}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{name_of(obj)}: {error.message}")


def check_pods(docs, problems):
    by_kind = {}
    for obj in docs:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    existing_secrets = set()
    for obj in docs:
        if obj["kind"] not in WORKLOADS:
            continue
        where = name_of(obj)
        spec = pod_template(obj)["spec"]
        pod_sc = spec.get("securityContext", {})
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: the service-account token is mounted")
        if pod_sc.get("runAsNonRoot") is not True:
            problems.append(f"{where}: pod securityContext.runAsNonRoot is not true")
        if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: pod seccompProfile is not RuntimeDefault")
        sa = spec.get("serviceAccountName", "default")
        if sa != "default" and sa not in by_kind.get("ServiceAccount", {}):
            problems.append(f"{where}: ServiceAccount {sa} is not rendered")
        long_running = obj["kind"] != "Job"
        containers = [(c, False) for c in spec.get("initContainers", [])]
        containers += [(c, long_running) for c in spec["containers"]]
        for container, serving in containers:
            cwhere = f"{where} container {container['name']}"
            sc = container.get("securityContext", {})
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cwhere}: root file system is writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cwhere}: allowPrivilegeEscalation is not false")
            if "ALL" not in (sc.get("capabilities") or {}).get("drop", []):
                problems.append(f"{cwhere}: capabilities are not all dropped")
            if (sc.get("capabilities") or {}).get("add"):
                problems.append(f"{cwhere}: adds capabilities")
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(kind, {}):
                        problems.append(f"{cwhere}: no {resource} {kind}")
            if serving:
                for probe in ("livenessProbe", "readinessProbe"):
                    if probe not in container:
                        problems.append(f"{cwhere}: no {probe}")
                env = {e["name"]: e.get("value") for e in container.get("env", [])}
                if "PALAVER_DRAIN_SECONDS" in env:
                    sleep = (((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
                    grace = spec.get("terminationGracePeriodSeconds", 30)
                    if grace <= sleep + int(env["PALAVER_DRAIN_SECONDS"]):
                        problems.append(
                            f"{cwhere}: terminationGracePeriodSeconds {grace} is not longer than "
                            f"the preStop sleep {sleep} + PALAVER_DRAIN_SECONDS {env['PALAVER_DRAIN_SECONDS']}")
            for env in container.get("env", []):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    check_secret_ref(by_kind, ref, f"{cwhere} env {env['name']}", problems, existing_secrets)
        for volume in spec.get("volumes", []):
            if "configMap" in volume and volume["configMap"]["name"] not in by_kind.get("ConfigMap", {}):
                problems.append(f"{where}: ConfigMap {volume['configMap']['name']} is not rendered")
            if "secret" in volume:
                for item in volume["secret"].get("items", []):
                    check_secret_ref(by_kind, {"name": volume["secret"]["secretName"], "key": item["key"]},
                                     f"{where} volume {volume['name']}", problems, existing_secrets)
    return existing_secrets


def check_secret_ref(by_kind, ref, where, problems, existing):
    secret = by_kind.get("Secret", {}).get(ref["name"])
    if secret is None:
        # A Secret the operator makes (externalDatabase, externalNats, adminToken).
        existing.add(ref["name"])
        return
    keys = set((secret.get("data") or {}).keys()) | set((secret.get("stringData") or {}).keys())
    if ref["key"] not in keys:
        problems.append(f"{where}: Secret {ref['name']} has no key {ref['key']}")


def pods(docs):
    """(workload, pod labels, container ports by number) of every workload."""
    for obj in docs:
        if obj["kind"] in WORKLOADS:
            template = pod_template(obj)
            ports = {}
            for container in template["spec"]["containers"]:
                for port in container.get("ports", []):
                    ports[port["containerPort"]] = port.get("name")
            yield obj, template["metadata"].get("labels", {}), ports


def check_references(docs, problems):
    services = {o["metadata"]["name"]: o for o in docs if o["kind"] == "Service"}
    deployments = {o["metadata"]["name"]: o for o in docs if o["kind"] == "Deployment"}
    all_pods = list(pods(docs))

    for svc in services.values():
        selector = svc["spec"].get("selector") or {}
        targets = [(w, ports) for w, labels, ports in all_pods if selects({"matchLabels": selector}, labels)]
        if not targets:
            problems.append(f"{name_of(svc)}: selects no pods")
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for workload, ports in targets:
                if target not in ports.values() and target not in ports:
                    problems.append(f"{name_of(svc)}: port {port['name']} targets {target}, which {name_of(workload)} does not serve")

    for workload, _labels, _ports in all_pods:
        for container in pod_template(workload)["spec"]["containers"] + pod_template(workload)["spec"].get("initContainers", []):
            for env in container.get("env", []):
                if not re.fullmatch(r"PALAVER_(IDENTITY|PRESENCE|CONVERSATION)_URL", env["name"]) or "value" not in env:
                    continue
                m = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", env["value"])
                where = f"{name_of(workload)} env {env['name']}"
                if not m:
                    problems.append(f"{where}: {env['value']!r} is not http://<service>:<port>")
                    continue
                svc = services.get(m.group(1))
                if svc is None:
                    problems.append(f"{where}: Service {m.group(1)} is not rendered")
                    continue
                if svc["spec"].get("clusterIP") != "None":
                    problems.append(f"{where}: {m.group(1)} is not headless; gRPC clients would pin one pod")
                port = int(m.group(2))
                if port not in [p["port"] for p in svc["spec"]["ports"]]:
                    problems.append(f"{where}: {m.group(1)} has no port {port}")
                served = [w for w, labels, ports in all_pods
                          if selects({"matchLabels": svc["spec"]["selector"]}, labels) and port in ports]
                if not served:
                    problems.append(f"{where}: no pod behind {m.group(1)} serves port {port}")

    for obj in docs:
        if obj["kind"] == "PodDisruptionBudget":
            if not any(selects(obj["spec"]["selector"], labels) for _w, labels, _p in all_pods):
                problems.append(f"{name_of(obj)}: selects no pods")
        if obj["kind"] == "HorizontalPodAutoscaler":
            target = deployments.get(obj["spec"]["scaleTargetRef"]["name"])
            if target is None:
                problems.append(f"{name_of(obj)}: scales a Deployment that is not rendered")
            elif "replicas" in target["spec"]:
                problems.append(f"{name_of(obj)}: {name_of(target)} sets replicas, which fights the HPA")
        if obj["kind"] == "Ingress":
            for rule in obj["spec"]["rules"]:
                for path in rule["http"]["paths"]:
                    backend = path["backend"]["service"]
                    svc = services.get(backend["name"])
                    names = [p.get("name") for p in svc["spec"]["ports"]] if svc else []
                    if svc is None or backend["port"].get("name") not in names:
                        problems.append(f"{name_of(obj)}: backend {backend} is not a rendered Service port")


def check_network_policies(docs, problems):
    policies = [o for o in docs if o["kind"] == "NetworkPolicy"]
    if not policies:
        return
    for workload, labels, _ports in pods(docs):
        covering = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        types = {t for p in covering for t in p["spec"].get("policyTypes", [])}
        if not {"Ingress", "Egress"} <= types:
            problems.append(f"{name_of(workload)}: not isolated by a NetworkPolicy for both ingress and egress")
    for policy in policies:
        component = policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component")
        for rule in policy["spec"].get("ingress", []):
            open_to_all = "from" not in rule or any("ipBlock" in peer for peer in rule["from"])
            if open_to_all and component != "gateway":
                problems.append(f"{name_of(policy)}: admits traffic from outside the cluster to {component}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kube-version", required=True)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    failed = 0
    for path in args.files:
        docs = load(path)
        problems = []
        validate_schemas(docs, args.kube_version, problems)
        if not problems:
            check_pods(docs, problems)
            check_references(docs, problems)
            check_network_policies(docs, problems)
        label = f"{Path(path).name} (Kubernetes {args.kube_version}, {len(docs)} objects)"
        if problems:
            failed += 1
            print(f"FAIL {label}")
            for problem in problems:
                print(f"  {problem}")
        else:
            print(f"ok   {label}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
