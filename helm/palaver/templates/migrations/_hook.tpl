{{/*
The migrations run before the services that need the new schema: a pre-install and
pre-upgrade hook. With the bundled PostgreSQL there is no database before the first
install, so the hook is pre-upgrade only and a first install migrates from the
identity and conversation pods' init containers.
*/}}
{{- define "palaver.migrations.hook" -}}
{{- if .Values.postgresql.enabled }}pre-upgrade{{ else }}pre-install,pre-upgrade{{ end }}
{{- end }}

{{/* Hook annotations of the Job and the objects it needs; these go first (weight). */}}
{{- define "palaver.migrations.hookAnnotations" -}}
helm.sh/hook: {{ include "palaver.migrations.hook" .root }}
helm.sh/hook-weight: {{ .weight | quote }}
# Deleted once every hook of the phase succeeded; a failed Job stays for its logs until
# the next attempt replaces it.
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end }}
