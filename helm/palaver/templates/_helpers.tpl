{{/*
Shared helpers. Every service folder (identity/, presence/, conversation/, gateway/)
renders its objects through the `palaver.component.*` templates below, called with a
context `(dict "root" $ "component" "<name>")`; what differs between the services is in
`palaver.components`.
*/}}

{{/*
What each service is, fixed by DESIGN.md ("Running the services one by one"): its port,
whether it speaks gRPC (the gateway speaks HTTP), its gRPC service name, what it needs
(PostgreSQL, NATS), which Palaver services it calls (this drives both the
PALAVER_*_URL variables and the NetworkPolicies), and whether it has `migrate`.
*/}}
{{- define "palaver.components" -}}
identity:
  port: 50051
  grpc: true
  database: true
  nats: false
  calls: []
  migrate: true
presence:
  port: 50052
  grpc: true
  database: false
  nats: true
  calls: [identity]
  migrate: false
conversation:
  port: 50053
  grpc: true
  database: true
  nats: true
  calls: [identity, presence]
  migrate: true
gateway:
  port: 8080
  grpc: false
  database: false
  nats: true
  calls: [identity, presence, conversation]
  migrate: false
{{- end }}

{{/* The facts of one component: (dict "root" $ "component" "identity") */}}
{{- define "palaver.component" -}}
{{- index (include "palaver.components" .root | fromYaml) .component | toYaml }}
{{- end }}

{{/* The admin port every service has: /healthz, /readyz, /metrics. */}}
{{- define "palaver.adminPort" -}}9090{{- end }}

{{- define "palaver.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The object-name prefix: fullnameOverride, else the release name when it contains the
chart name, else `<release>-palaver`.
*/}}
{{- define "palaver.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
`<prefix>-<component>`; the prefix is cut to 40 characters so that the longest name,
`<prefix>-conversation-headless`, stays a DNS label (63).
*/}}
{{- define "palaver.componentName" -}}
{{- printf "%s-%s" (include "palaver.fullname" .root | trunc 40 | trimSuffix "-") .component }}
{{- end }}

{{- define "palaver.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object of a component: (dict "root" $ "component" "identity") */}}
{{- define "palaver.labels" -}}
helm.sh/chart: {{ include "palaver.chart" .root }}
{{ include "palaver.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: palaver
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "palaver.selectorLabels" -}}
app.kubernetes.io/name: {{ include "palaver.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
A NetworkPolicy peer selecting the pods of the given components of this release:
(dict "root" $ "components" (list "gateway" "presence")).
*/}}
{{- define "palaver.peerPods" -}}
podSelector:
  matchLabels:
    app.kubernetes.io/name: {{ include "palaver.name" .root }}
    app.kubernetes.io/instance: {{ .root.Release.Name }}
  matchExpressions:
    - key: app.kubernetes.io/component
      operator: In
      values: {{ toJson .components }}
{{- end }}

{{/* An image reference from {registry, repository, tag, digest}; tag defaults to appVersion. */}}
{{- define "palaver.imageRef" -}}
{{- $image := .image }}
{{- $ref := $image.repository }}
{{- if $image.registry }}{{ $ref = printf "%s/%s" $image.registry $image.repository }}{{ end }}
{{- $ref = printf "%s:%s" $ref (default .root.Chart.AppVersion ($image.tag | toString)) }}
{{- if $image.digest }}{{ $ref = printf "%s@%s" $ref $image.digest }}{{ end }}
{{- $ref }}
{{- end }}

{{- define "palaver.image" -}}
{{- include "palaver.imageRef" (dict "root" .root "image" .root.Values.image) }}
{{- end }}

{{- define "palaver.serviceAccountName" -}}
{{- $sa := (index .root.Values .component).serviceAccount }}
{{- if $sa.create }}
{{- default (include "palaver.componentName" .) $sa.name }}
{{- else }}
{{- default "default" $sa.name }}
{{- end }}
{{- end }}

{{/* The Secret the chart makes for what it generates (admin token, try-out backends). */}}
{{- define "palaver.generatedSecretName" -}}
{{- printf "%s-generated" (include "palaver.fullname" .) }}
{{- end }}

{{- define "palaver.needsGeneratedSecret" -}}
{{- if or (not .Values.adminToken.existingSecret) .Values.nats.enabled .Values.postgresql.enabled }}true{{ end }}
{{- end }}

{{/* Where each secret value comes from: `name:` and `key:` of a secretKeyRef. */}}
{{- define "palaver.secretRef.databaseUrl" -}}
{{- if .root.Values.postgresql.enabled -}}
name: {{ include "palaver.generatedSecretName" .root }}
key: {{ printf "%s-database-url" .component }}
{{- else -}}
name: {{ required "externalDatabase.existingSecret: name the Secret holding the PostgreSQL URLs, or set postgresql.enabled=true to try Palaver out" .root.Values.externalDatabase.existingSecret }}
key: {{ index .root.Values.externalDatabase (printf "%sUrlKey" .component) }}
{{- end }}
{{- end }}

{{- define "palaver.secretRef.natsUrl" -}}
{{- if .Values.nats.enabled -}}
name: {{ include "palaver.generatedSecretName" . }}
key: nats-url
{{- else -}}
name: {{ required "externalNats.existingSecret: name the Secret holding the NATS URL, or set nats.enabled=true to try Palaver out" .Values.externalNats.existingSecret }}
key: {{ .Values.externalNats.urlKey }}
{{- end }}
{{- end }}

{{- define "palaver.secretRef.adminToken" -}}
{{- if .Values.adminToken.existingSecret -}}
name: {{ .Values.adminToken.existingSecret }}
key: {{ .Values.adminToken.key }}
{{- else -}}
name: {{ include "palaver.generatedSecretName" . }}
key: admin-token
{{- end }}
{{- end }}

{{/* PALAVER_PUBLIC_URL: gateway.publicUrl, else the ingress host, else a port-forward. */}}
{{- define "palaver.publicUrl" -}}
{{- if .Values.gateway.publicUrl }}
{{- .Values.gateway.publicUrl | trimSuffix "/" }}
{{- else if .Values.ingress.enabled }}
{{- printf "%s://%s" (ternary "https" "http" .Values.ingress.tls.enabled) (required "ingress.host is required when ingress.enabled" .Values.ingress.host) }}
{{- else }}
{{- print "http://localhost:8080" }}
{{- end }}
{{- end }}

{{/* The URL a client uses for a gRPC service: its headless Service, every pod resolved. */}}
{{- define "palaver.grpcUrl" -}}
{{- $info := include "palaver.component" . | fromYaml }}
{{- printf "http://%s-headless:%v" (include "palaver.componentName" .) $info.port }}
{{- end }}

{{/*
The environment of a component's server container, in a fixed order: common settings,
backends, the services it calls, then the user's additions. Plain values except the
secrets, which come from Secrets (secretKeyRef), so a test can run the binary with what
this renders.
*/}}
{{- define "palaver.env" -}}
{{- $root := .root }}
{{- $info := include "palaver.component" . | fromYaml -}}
{{- include "palaver.env.common" . }}
{{- if $info.database }}
- name: PALAVER_DATABASE_URL
  valueFrom:
    secretKeyRef: {{- include "palaver.secretRef.databaseUrl" . | trim | nindent 6 }}
{{- end }}
{{- if $info.nats }}
- name: PALAVER_NATS_URL
  valueFrom:
    secretKeyRef: {{- include "palaver.secretRef.natsUrl" $root | trim | nindent 6 }}
{{- end }}
{{- range $info.calls }}
- name: {{ printf "PALAVER_%s_URL" (upper .) }}
  value: {{ include "palaver.grpcUrl" (dict "root" $root "component" .) | quote }}
{{- end }}
{{- if eq .component "gateway" }}
- name: PALAVER_PUBLIC_URL
  value: {{ include "palaver.publicUrl" $root | quote }}
- name: PALAVER_ADMIN_TOKEN
  valueFrom:
    secretKeyRef: {{- include "palaver.secretRef.adminToken" $root | trim | nindent 6 }}
{{- end }}
{{- include "palaver.env.extra" . }}
{{- end }}

{{/* Settings every container of a component reads (the migration ones too). */}}
{{- define "palaver.env.common" -}}
{{- $root := .root }}
{{- $values := index $root.Values .component }}
{{- $info := include "palaver.component" . | fromYaml -}}
- name: PALAVER_LISTEN
  value: {{ printf "%s:%v" $root.Values.config.listenHost $info.port | quote }}
- name: PALAVER_ADMIN_LISTEN
  value: {{ printf "%s:%s" $root.Values.config.listenHost (include "palaver.adminPort" $root) | quote }}
- name: PALAVER_DRAIN_SECONDS
  value: {{ $values.drainSeconds | quote }}
- name: RUST_LOG
  value: {{ $root.Values.config.logLevel | quote }}
{{- with $root.Values.otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- $attributes := list (printf "k8s.namespace.name=%s" $root.Release.Namespace) "k8s.pod.name=$(POD_NAME)" (printf "service.namespace=%s" (include "palaver.fullname" $root)) }}
{{- range $name, $value := $root.Values.otel.resourceAttributes }}
{{- $attributes = append $attributes (printf "%s=%v" $name $value) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attributes | quote }}
{{- end }}
{{- end }}

{{- define "palaver.env.extra" -}}
{{- $root := .root }}
{{- $values := index $root.Values .component }}
{{- range $name, $value := merge (deepCopy (default dict $values.env)) (default dict $root.Values.config.env) }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- with $root.Values.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with $values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The environment of a component's `migrate` container: what migrating reads, no more. */}}
{{- define "palaver.env.migrate" -}}
{{- include "palaver.env.common" . }}
- name: PALAVER_DATABASE_URL
  valueFrom:
    secretKeyRef: {{- include "palaver.secretRef.databaseUrl" . | trim | nindent 6 }}
{{- end }}

{{/*
Probes. Startup and liveness: the standard gRPC health check on the service's own port
(the gateway: /healthz on the admin port), which proves the server that carries the
traffic answers and does not depend on PostgreSQL or NATS, so an outage of either never
restarts pods. Readiness: /readyz on the admin port, which fails while PostgreSQL or NATS
is unreachable and once draining starts, so the pod leaves the headless Service (what the
gRPC clients resolve) and the gateway leaves the Ingress.
*/}}
{{- define "palaver.probes" -}}
{{- $root := .root }}
{{- $info := include "palaver.component" . | fromYaml }}
{{- $alive := dict "httpGet" (dict "path" "/healthz" "port" "http-admin") }}
{{- if $info.grpc }}
{{- $alive = dict "grpc" (dict "port" $info.port) }}
{{- end -}}
startupProbe:
  {{- toYaml $alive | nindent 2 }}
  {{- toYaml $root.Values.probes.startup | nindent 2 }}
livenessProbe:
  {{- toYaml $alive | nindent 2 }}
  {{- toYaml $root.Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http-admin
  {{- toYaml $root.Values.probes.readiness | nindent 2 }}
{{- end }}

{{/* The grace period: longer than the preStop sleep plus the drain timeout. */}}
{{- define "palaver.terminationGracePeriodSeconds" -}}
{{- $root := .root }}
{{- $values := index $root.Values .component }}
{{- $needed := add (include "palaver.preStopSleepSeconds" $root) $values.drainSeconds }}
{{- if $values.terminationGracePeriodSeconds }}
{{- if le (int $values.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "%s.terminationGracePeriodSeconds (%v) must be longer than preStopSleepSeconds + %s.drainSeconds (%v)" .component $values.terminationGracePeriodSeconds .component $needed) }}
{{- end }}
{{- $values.terminationGracePeriodSeconds }}
{{- else }}
{{- add $needed 10 }}
{{- end }}
{{- end }}

{{/* The preStop sleep in effect: the sleep action exists from Kubernetes 1.30. */}}
{{- define "palaver.preStopSleepSeconds" -}}
{{- if and .Values.preStopSleepSeconds (semverCompare ">=1.30-0" .Capabilities.KubeVersion.Version) }}
{{- .Values.preStopSleepSeconds }}
{{- else }}0{{ end }}
{{- end }}

{{/* Topology spread: the component's or the shared list, each with its labelSelector. */}}
{{- define "palaver.topologySpreadConstraints" -}}
{{- $values := index .root.Values .component }}
{{- $constraints := $values.topologySpreadConstraints | default .root.Values.topologySpreadConstraints }}
{{- $selector := include "palaver.selectorLabels" . | fromYaml }}
{{- range $constraints -}}
{{- $c := deepCopy . }}
{{- if not (hasKey $c "labelSelector") }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" $selector) }}
{{- end }}
{{- if not (hasKey $c "matchLabelKeys") }}
{{- $_ := set $c "matchLabelKeys" (list "pod-template-hash") }}
{{- end }}
- {{ toYaml $c | nindent 2 | trim }}
{{- end }}
{{- end }}

{{/* The writable /tmp every container gets, the root file system being read-only. */}}
{{- define "palaver.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{/*
checkov (make helm-check) annotations for what a workload knowingly does not do, each
with its reason: (dict "image" <image values> "secretEnv" <reads secrets from env>).
Digest pinning is a value: the two image checks are only waived while the digest is empty.
*/}}
{{- define "palaver.checkovSkips" -}}
{{- if .secretEnv }}
checkov.io/skip1: CKV_K8S_35=Palaver reads its configuration from environment variables only (DESIGN.md); the secret ones come from Secrets through secretKeyRef and are held in never-printed secret types
{{- end }}
{{- if not .image.digest }}
checkov.io/skip2: CKV_K8S_43=Pinning by digest is image.digest (or nats/postgresql.image.digest); releases are immutable version tags
checkov.io/skip3: CKV_K8S_15=IfNotPresent suits immutable version tags; Always would make every pod start depend on the registry. A digest passes this check
{{- end }}
{{- end }}

{{/* A NetworkPolicy egress rule to DNS. */}}
{{- define "palaver.egress.dns" -}}
- to: {{- toYaml .Values.networkPolicy.dnsPeers | nindent 4 }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end }}

{{/* Egress to the OTLP collector, when there is one. */}}
{{- define "palaver.egress.otel" -}}
{{- with .Values.otel.endpoint }}
{{- $hostPort := regexReplaceAll "^[a-z]+://" . "" | regexReplaceAll "/.*$" "" }}
{{- $port := regexFind ":[0-9]+$" $hostPort | trimPrefix ":" | default "4317" }}
- ports:
    - protocol: TCP
      port: {{ int $port }}
  {{- with $.Values.otel.networkPolicyPeers }}
  to: {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Egress to PostgreSQL: the bundled one, or the external one's port. */}}
{{- define "palaver.egress.database" -}}
{{- if .Values.postgresql.enabled }}
- to:
    - podSelector:
        matchLabels: {{- include "palaver.selectorLabels" (dict "root" . "component" "postgresql") | nindent 10 }}
  ports:
    - protocol: TCP
      port: 5432
{{- else }}
- ports:
    - protocol: TCP
      port: {{ .Values.externalDatabase.port }}
  {{- with .Values.externalDatabase.networkPolicyPeers }}
  to: {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Egress to NATS: the bundled one, or the external one's port. */}}
{{- define "palaver.egress.nats" -}}
{{- if .Values.nats.enabled }}
- to:
    - podSelector:
        matchLabels: {{- include "palaver.selectorLabels" (dict "root" . "component" "nats") | nindent 10 }}
  ports:
    - protocol: TCP
      port: 4222
{{- else }}
- ports:
    - protocol: TCP
      port: {{ .Values.externalNats.port }}
  {{- with .Values.externalNats.networkPolicyPeers }}
  to: {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Ingress to the admin port from the metrics scrapers. */}}
{{- define "palaver.ingress.metrics" -}}
- ports:
    - protocol: TCP
      port: {{ include "palaver.adminPort" . }}
  from:
  {{- if .Values.networkPolicy.metricsFrom }}
    {{- toYaml .Values.networkPolicy.metricsFrom | nindent 4 }}
  {{- else }}
    - namespaceSelector: {}
  {{- end }}
{{- end }}
