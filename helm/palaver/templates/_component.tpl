{{/*
The objects every Palaver service has, rendered from the service folders with
(dict "root" $ "component" "<name>"). What differs between services comes from
`palaver.components` (_helpers.tpl) and from the service's own values.
*/}}

{{- define "palaver.component.deployment" -}}
{{- $root := .root }}
{{- $values := index $root.Values .component }}
{{- $info := include "palaver.component" . | fromYaml }}
{{- $autoscaled := and $values.autoscaling $values.autoscaling.enabled }}
{{- $preStop := include "palaver.preStopSleepSeconds" $root | int }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "palaver.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels: {{- include "palaver.labels" . | nindent 4 }}
  annotations: {{- include "palaver.checkovSkips" (dict "image" $root.Values.image "secretEnv" true) | trim | nindent 4 }}
spec:
  {{- if not $autoscaled }}
  replicas: {{ $values.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  selector:
    matchLabels: {{- include "palaver.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "palaver.labels" . | nindent 8 }}
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $values.podAnnotations }}
      annotations: {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "palaver.serviceAccountName" . }}
      automountServiceAccountToken: false
      # Service links would put PALAVER_<SERVICE>_PORT and the like into the environment,
      # the very prefix Palaver's configuration uses.
      enableServiceLinks: false
      securityContext: {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ include "palaver.terminationGracePeriodSeconds" . }}
      {{- with $values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets: {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with include "palaver.topologySpreadConstraints" . | trim }}
      topologySpreadConstraints: {{- . | nindent 8 }}
      {{- end }}
      {{- with $values.nodeSelector }}
      nodeSelector: {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.affinity }}
      affinity: {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations: {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if and $info.migrate $root.Values.migrations.enabled $root.Values.postgresql.enabled }}
      # The bundled PostgreSQL does not exist before the first install, when the
      # pre-install hook would run: migrate here instead (idempotent, and safe with
      # several replicas: the migrator takes a lock).
      initContainers:
        - name: migrate
          image: {{ include "palaver.image" . }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: [{{ printf "palaver-%s" .component | quote }}]
          args: ["migrate"]
          env: {{- include "palaver.env.migrate" . | trim | nindent 12 }}
          resources: {{- toYaml $root.Values.migrations.resources | nindent 12 }}
          securityContext: {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "palaver.image" . }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          # Each binary runs its server when given no argument (DESIGN.md).
          command: [{{ printf "palaver-%s" .component | quote }}]
          ports:
            - name: {{ ternary "grpc" "http" $info.grpc }}
              containerPort: {{ $info.port }}
              protocol: TCP
            - name: http-admin
              containerPort: {{ include "palaver.adminPort" $root }}
              protocol: TCP
          env: {{- include "palaver.env" . | trim | nindent 12 }}
          {{- include "palaver.probes" . | trim | nindent 10 }}
          {{- if $preStop }}
          lifecycle:
            preStop:
              sleep:
                seconds: {{ $preStop }}
          {{- end }}
          resources: {{- toYaml $values.resources | nindent 12 }}
          securityContext: {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes: {{- include "palaver.tmpVolume" $root | nindent 8 }}
{{- end }}

{{/* The Service others (and the ServiceMonitor) use; the gateway's is its public one. */}}
{{- define "palaver.component.service" -}}
{{- $root := .root }}
{{- $info := include "palaver.component" . | fromYaml }}
{{- $type := "ClusterIP" }}
{{- $annotations := dict }}
{{- $port := $info.port }}
{{- if eq .component "gateway" }}
{{- $type = $root.Values.gateway.service.type }}
{{- $annotations = $root.Values.gateway.service.annotations }}
{{- $port = $root.Values.gateway.service.port }}
{{- end }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "palaver.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels: {{- include "palaver.labels" . | nindent 4 }}
  {{- with $annotations }}
  annotations: {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $type }}
  selector: {{- include "palaver.selectorLabels" . | nindent 4 }}
  ports:
    {{- if $info.grpc }}
    - name: grpc
      port: {{ $port }}
      targetPort: grpc
      protocol: TCP
      appProtocol: kubernetes.io/h2c
    {{- else }}
    - name: http
      port: {{ $port }}
      targetPort: http
      protocol: TCP
      appProtocol: http
    {{- end }}
    {{- if eq $type "ClusterIP" }}
    - name: http-admin
      port: {{ include "palaver.adminPort" $root }}
      targetPort: http-admin
      protocol: TCP
      appProtocol: http
    {{- end }}
{{- if ne $type "ClusterIP" }}
---
# The admin port stays inside the cluster when the gateway's Service is exposed.
apiVersion: v1
kind: Service
metadata:
  name: {{ include "palaver.componentName" . }}-admin
  namespace: {{ $root.Release.Namespace }}
  labels: {{- include "palaver.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector: {{- include "palaver.selectorLabels" . | nindent 4 }}
  ports:
    - name: http-admin
      port: {{ include "palaver.adminPort" $root }}
      targetPort: http-admin
      protocol: TCP
      appProtocol: http
{{- end }}
{{- end }}

{{/*
The headless Service gRPC clients resolve (PALAVER_<SERVICE>_URL): every ready pod's
address, re-resolved by the kit's balancing channel, so calls spread over all replicas
instead of riding one HTTP/2 connection to one pod behind a ClusterIP.
*/}}
{{- define "palaver.component.headlessService" -}}
{{- $root := .root }}
{{- $info := include "palaver.component" . | fromYaml }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "palaver.componentName" . }}-headless
  namespace: {{ $root.Release.Namespace }}
  labels: {{- include "palaver.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  clusterIP: None
  # Only ready pods: a draining or disconnected pod leaves DNS before it stops.
  publishNotReadyAddresses: false
  selector: {{- include "palaver.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $info.port }}
      targetPort: grpc
      protocol: TCP
      appProtocol: kubernetes.io/h2c
{{- end }}

{{- define "palaver.component.serviceAccount" -}}
{{- $values := index .root.Values .component }}
{{- if $values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "palaver.serviceAccountName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels: {{- include "palaver.labels" . | nindent 4 }}
  {{- with $values.serviceAccount.annotations }}
  annotations: {{- toYaml . | nindent 4 }}
  {{- end }}
# No Palaver service talks to the Kubernetes API.
automountServiceAccountToken: false
{{- end }}
{{- end }}

{{- define "palaver.component.pdb" -}}
{{- $values := index .root.Values .component }}
{{- if $values.pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "palaver.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels: {{- include "palaver.labels" . | nindent 4 }}
spec:
  selector:
    matchLabels: {{- include "palaver.selectorLabels" . | nindent 6 }}
  {{- if $values.pdb.minAvailable }}
  minAvailable: {{ $values.pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $values.pdb.maxUnavailable }}
  {{- end }}
  # A crash-looping pod must not block node drains.
  unhealthyPodEvictionPolicy: AlwaysAllow
{{- end }}
{{- end }}

{{- define "palaver.component.hpa" -}}
{{- $values := index .root.Values .component }}
{{- if $values.autoscaling.enabled }}
{{- if gt (int $values.autoscaling.minReplicas) (int $values.autoscaling.maxReplicas) }}
{{- fail (printf "%s.autoscaling.minReplicas must not exceed maxReplicas" .component) }}
{{- end }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "palaver.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels: {{- include "palaver.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "palaver.componentName" . }}
  minReplicas: {{ $values.autoscaling.minReplicas }}
  maxReplicas: {{ $values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $values.autoscaling.targetCPUUtilizationPercentage }}
    {{- with $values.autoscaling.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
  {{- with $values.autoscaling.behavior }}
  behavior: {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
Ingress: the service's own port from the Palaver services that call it (the gateway's
from anyone, or networkPolicy.gatewayFrom), and the admin port from the scrapers.
Egress: DNS, the services it calls, its backends, the OTLP collector, and for the
gateway the webhook URLs.
*/}}
{{- define "palaver.component.networkPolicy" -}}
{{- $root := .root }}
{{- $name := .component }}
{{- $info := include "palaver.component" . | fromYaml }}
{{- $all := include "palaver.components" $root | fromYaml }}
{{- if $root.Values.networkPolicy.enabled }}
{{- $callers := list }}
{{- range $caller, $c := $all }}
{{- if has $name $c.calls }}{{ $callers = append $callers $caller }}{{ end }}
{{- end }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "palaver.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels: {{- include "palaver.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels: {{- include "palaver.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    {{- if $callers }}
    - from:
        - {{ include "palaver.peerPods" (dict "root" $root "components" $callers) | indent 10 | trim }}
      ports:
        - protocol: TCP
          port: {{ $info.port }}
    {{- end }}
    {{- if eq $name "gateway" }}
    - ports:
        - protocol: TCP
          port: {{ $info.port }}
      {{- with $root.Values.networkPolicy.gatewayFrom }}
      from: {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
    {{- include "palaver.ingress.metrics" $root | trim | nindent 4 }}
  egress:
    {{- include "palaver.egress.dns" $root | trim | nindent 4 }}
    {{- range $info.calls }}
    - to:
        - {{ include "palaver.peerPods" (dict "root" $root "components" (list .)) | indent 10 | trim }}
      ports:
        - protocol: TCP
          port: {{ (index $all .).port }}
    {{- end }}
    {{- if $info.database }}
    {{- include "palaver.egress.database" $root | trim | nindent 4 }}
    {{- end }}
    {{- if $info.nats }}
    {{- include "palaver.egress.nats" $root | trim | nindent 4 }}
    {{- end }}
    {{- with include "palaver.egress.otel" $root | trim }}{{ . | nindent 4 }}{{ end }}
    {{- if and (eq $name "gateway") $root.Values.gateway.webhookEgress.enabled }}
    {{- $v4 := list }}
    {{- $v6 := list }}
    {{- range $root.Values.gateway.webhookEgress.except }}
    {{- if contains ":" . }}{{ $v6 = append $v6 . }}{{ else }}{{ $v4 = append $v4 . }}{{ end }}
    {{- end }}
    # Webhooks go to the CMSs' own URLs, anywhere but private and metadata addresses.
    - to:
        - ipBlock:
            cidr: 0.0.0.0/0
            {{- with $v4 }}
            except: {{- toYaml . | nindent 14 }}
            {{- end }}
        - ipBlock:
            cidr: ::/0
            {{- with $v6 }}
            except: {{- toYaml . | nindent 14 }}
            {{- end }}
      ports:
        {{- range $root.Values.gateway.webhookEgress.ports }}
        - protocol: TCP
          port: {{ . }}
        {{- end }}
    {{- end }}
    {{- with $root.Values.networkPolicy.extraEgress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
{{- end }}

{{- define "palaver.component.serviceMonitor" -}}
{{- $root := .root }}
{{- if $root.Values.serviceMonitor.enabled }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "palaver.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "palaver.labels" . | nindent 4 }}
    {{- with $root.Values.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  jobLabel: app.kubernetes.io/component
  selector:
    matchLabels: {{- include "palaver.selectorLabels" . | nindent 6 }}
  namespaceSelector:
    matchNames:
      - {{ $root.Release.Namespace }}
  endpoints:
    # Only the Service carrying the admin port matches (not the headless one).
    - port: http-admin
      path: /metrics
      interval: {{ $root.Values.serviceMonitor.interval }}
      scrapeTimeout: {{ $root.Values.serviceMonitor.scrapeTimeout }}
{{- end }}
{{- end }}
