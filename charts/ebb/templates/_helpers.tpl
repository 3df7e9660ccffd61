{{/* The release's full name: the release name when it holds the chart's name, else release-chart. */}}
{{- define "ebb.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "ebb.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: ebb
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* What the Service, the PDB and the NetworkPolicy select: ebb's pods. */}}
{{- define "ebb.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: scaler
{{- end -}}

{{- define "ebb.serviceAccountName" -}}
{{- default (include "ebb.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "ebb.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "ebb.fullname" .)) .Values.tls.secretName -}}
{{- end -}}

{{/* The image, tagged with the chart's appVersion unless image.tag is set. */}}
{{- define "ebb.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* .api must be served for the objects of .what: (dict "Capabilities" .Capabilities "api" "monitoring.coreos.com/v1" "what" "serviceMonitor.enabled" "crds" "...") */}}
{{- define "ebb.requireAPI" -}}
{{- if not (.Capabilities.APIVersions.Has .api) -}}
{{- fail (printf "%s: the cluster does not serve %s (%s); install them, or turn %s off (helm template: add --api-versions %s)" .what .api .crds .what .api) -}}
{{- end -}}
{{- end -}}
