{{/*
The chart name, or nameOverride; used in the app.kubernetes.io/name label.
*/}}
{{- define "triton-recommender.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources (63 characters at most: a DNS label). The release name
alone when it already contains the chart name (e.g. triton-recommender-spot).
*/}}
{{- define "triton-recommender.fullname" -}}
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
The headless Service's name: the full name (shortened to leave room) plus -headless.
*/}}
{{- define "triton-recommender.headlessName" -}}
{{- printf "%s-headless" (include "triton-recommender.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "triton-recommender.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every resource.
*/}}
{{- define "triton-recommender.labels" -}}
helm.sh/chart: {{ include "triton-recommender.chart" . }}
{{ include "triton-recommender.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: inference-server
app.kubernetes.io/part-of: spillover
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the pods: they never change over the release's life (selectors are immutable).
*/}}
{{- define "triton-recommender.selectorLabels" -}}
app.kubernetes.io/name: {{ include "triton-recommender.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "triton-recommender.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "triton-recommender.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Triton's --model-repository: s3://bucket/prefix, or the mounted volume.
*/}}
{{- define "triton-recommender.modelRepository" -}}
{{- $repo := .Values.modelRepository }}
{{- if eq $repo.source "s3" }}
{{- if $repo.s3.prefix }}
{{- printf "s3://%s/%s" $repo.s3.bucket $repo.s3.prefix }}
{{- else }}
{{- printf "s3://%s" $repo.s3.bucket }}
{{- end }}
{{- else }}
{{- $repo.pvc.mountPath }}
{{- end }}
{{- end }}
