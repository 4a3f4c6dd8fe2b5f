{{/*
Names and labels shared by every template. Objects are named after the
release ("<release>-node-agent"), except the estimator Services, whose names
karmada-scheduler derives from the member cluster's name.
*/}}

{{- define "tessera.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tessera.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tessera
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one component; pass (dict "root" $ "component" "x"). */}}
{{- define "tessera.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component's objects. */}}
{{- define "tessera.componentLabels" -}}
{{ include "tessera.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image reference; pass (dict "root" $ "image" .Values.x.image). */}}
{{- define "tessera.image" -}}
{{- $tag := .image.tag | default .root.Values.imageTag | default .root.Chart.AppVersion -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}

{{- define "tessera.configMapName" -}}
{{ include "tessera.fullname" . }}-config
{{- end -}}

{{/* Where the config file is mounted in every container. */}}
{{- define "tessera.configDir" -}}
/etc/tessera
{{- end -}}

{{/*
RBAC subjects of a memberAccess value; pass (dict "subjects" .x.memberAccess.subjects "value" "x.memberAccess").
A ServiceAccount needs its namespace; any other kind is an RBAC user or group.
*/}}
{{- define "tessera.subjects" -}}
{{- if not .subjects }}
{{- fail (printf "%s.enabled needs %s.subjects" .value .value) }}
{{- end }}
{{- $value := .value }}
{{- range .subjects }}
- kind: {{ .kind }}
  name: {{ .name }}
  {{- if eq .kind "ServiceAccount" }}
  namespace: {{ required (printf "%s.subjects: a ServiceAccount needs a namespace" $value) (get . "namespace") }}
  {{- else }}
  apiGroup: rbac.authorization.k8s.io
  {{- end }}
{{- end }}
{{- end -}}
