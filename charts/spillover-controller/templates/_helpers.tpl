{{/*
The chart name, or nameOverride; used in the app.kubernetes.io/name label.
*/}}
{{- define "spillover-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources (63 characters at most: a DNS label). The release name
alone when it already contains the chart name (e.g. spillover-controller).
*/}}
{{- define "spillover-controller.fullname" -}}
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
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "spillover-controller.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every resource.
*/}}
{{- define "spillover-controller.labels" -}}
helm.sh/chart: {{ include "spillover-controller.chart" . }}
{{ include "spillover-controller.selectorLabels" . }}
app.kubernetes.io/version: {{ include "spillover-controller.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: spillover
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the pods: they never change over the release's life (selectors are immutable).
*/}}
{{- define "spillover-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spillover-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "spillover-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "spillover-controller.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image tag: image.tag, or the chart's appVersion (the spillover release it was made for).
*/}}
{{- define "spillover-controller.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
Where the controller reads its config (the command line names it).
*/}}
{{- define "spillover-controller.configPath" -}}
/etc/spillover/spillover.yaml
{{- end }}

{{/*
The in-cluster kubernetes pools' Deployments, by namespace ({"spillover": ["triton-recommender"]}):
the RBAC is made from this. Pools with a kubeconfig live in other clusters.
*/}}
{{- define "spillover-controller.inClusterDeployments" -}}
{{- $byNamespace := dict }}
{{- range .Values.config.pools }}
{{- if and (eq (.driver | default "local") "kubernetes") .kubernetes (not .kubernetes.kubeconfig) }}
{{- $deployments := get $byNamespace .kubernetes.namespace | default list }}
{{- $_ := set $byNamespace .kubernetes.namespace (append $deployments .kubernetes.deployment | uniq) }}
{{- end }}
{{- end }}
{{- toJson $byNamespace }}
{{- end }}

{{/*
Refuse values that pass the schema but cannot work in a pod. The schema is spillover.yaml's own;
these rules are about where the controller runs.
*/}}
{{- define "spillover-controller.checkDeployable" -}}
{{- $config := .Values.config }}
{{- $settings := $config.controller | default dict }}
{{- if ne ($settings.metrics_host | default "127.0.0.1") "0.0.0.0" }}
{{- fail "config.controller.metrics_host must be 0.0.0.0 in a pod: on 127.0.0.1 the metrics Service cannot reach /metrics" }}
{{- end }}
{{- if and (hasKey $settings "metrics_port") (eq (int $settings.metrics_port) 0) }}
{{- fail "config.controller.metrics_port must be a fixed port in a pod (0 picks a random one the metrics Service cannot target)" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not $settings.cluster) }}
{{- fail "replicaCount 2 needs config.controller.cluster (leader election): without a Lease both controllers would act on the same pools" }}
{{- end }}
{{- $dataDir := printf "%s/" .Values.persistence.mountPath }}
{{- if not (hasPrefix $dataDir ($settings.database | default "")) }}
{{- fail (printf "config.controller.database must be a file under persistence.mountPath (%s), or the ledger and policy state are lost with the pod" .Values.persistence.mountPath) }}
{{- end }}
{{- $runtimeApi := ($config.gateway | default dict).runtime_api | default "" }}
{{- if or (not $runtimeApi) (hasPrefix "/" $runtimeApi) }}
{{- fail "config.gateway.runtime_api must be the gateway's runtime Service as host:port (e.g. spillover-gateway-runtime.spillover.svc.cluster.local:9999): no unix socket is shared with the gateway's pod" }}
{{- end }}
{{- range $config.pools }}
{{- if eq (.driver | default "local") "local" }}
{{- fail (printf "config.pools: pool %q uses driver local, which starts tritonserver processes beside the controller; in a cluster use driver kubernetes" .name) }}
{{- end }}
{{- with .kubernetes }}
{{- with .kubeconfig }}
{{- if not $.Values.kubeconfigs.secretName }}
{{- fail (printf "config.pools: a pool reads the kubeconfig %s, but kubeconfigs.secretName is empty: name the Secret that holds it" .) }}
{{- end }}
{{- if not (hasPrefix (printf "%s/" $.Values.kubeconfigs.mountPath) .) }}
{{- fail (printf "config.pools: the kubeconfig %s is not under kubeconfigs.mountPath (%s), where the Secret's files appear" . $.Values.kubeconfigs.mountPath) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
