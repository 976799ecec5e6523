{{/* The release's full name: the release name when it already says "syncer" (helm install syncer ...). */}}
{{- define "syncer.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "syncer.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "syncer.labels" -}}
{{ include "syncer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "syncer.serviceAccountName" -}}
{{- default (include "syncer.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* The daemon's ServiceAccount as the subject of a binding. */}}
{{- define "syncer.subjects" -}}
subjects:
- kind: ServiceAccount
  name: {{ include "syncer.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end -}}
