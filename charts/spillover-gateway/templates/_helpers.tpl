{{/*
The chart name, or nameOverride; used in the app.kubernetes.io/name label.
*/}}
{{- define "spillover-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources (63 characters at most: a DNS label). The release name
alone when it already contains the chart name (e.g. spillover-gateway).
*/}}
{{- define "spillover-gateway.fullname" -}}
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
{{- define "spillover-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every resource.
*/}}
{{- define "spillover-gateway.labels" -}}
helm.sh/chart: {{ include "spillover-gateway.chart" . }}
{{ include "spillover-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: gateway
app.kubernetes.io/part-of: spillover
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the pods: they never change over the release's life (selectors are immutable).
*/}}
{{- define "spillover-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spillover-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
A Service name made of the full name (shortened to leave room) and a suffix.
*/}}
{{- define "spillover-gateway.suffixedName" -}}
{{- printf "%s-%s" (include "spillover-gateway.fullname" .root | trunc (int (sub 62 (len .suffix))) | trimSuffix "-") .suffix }}
{{- end }}

{{/*
Labels of a resource that plays its own part (component) in the release.
*/}}
{{- define "spillover-gateway.componentLabels" -}}
{{- merge (dict "app.kubernetes.io/component" .component) (include "spillover-gateway.labels" .root | fromYaml) | toYaml }}
{{- end }}

{{/*
Where HAProxy reads the burst pools' CA: the ConfigMap's burst-ca.crt, beside haproxy.cfg.
*/}}
{{- define "spillover-gateway.burstCaFile" -}}
/usr/local/etc/haproxy/burst-ca.crt
{{- end }}

{{/*
Every pool as {name, address, slots, weight, tls}: the private pool's headless Service by its
cluster DNS name, then the burst pools' load balancers. `tls` is the server options that make a
burst pool's connections (traffic and checks) TLS, verified against burstTls.caCertificate for
the pool's tlsServerName (sent as SNI); empty for the private pool, whose hop stays in-cluster.
Fails on a pool name used twice, since the controller tells pools apart by their server names,
and on a burst pool that TLS cannot verify.
*/}}
{{- define "spillover-gateway.pools" -}}
{{- $private := .Values.pools.private }}
{{- $namespace := $private.namespace | default .Release.Namespace }}
{{- $address := printf "%s.%s.svc.%s" $private.service $namespace .Values.clusterDomain }}
{{- $pools := list (dict "name" $private.name "address" $address "slots" $private.slots "weight" $private.weight "tls" "" "maxconn" ($private.maxconnPerServer | default 0)) }}
{{- $seen := dict $private.name true }}
{{- range .Values.pools.burst }}
{{- if hasKey $seen .name }}
{{- fail (printf "pools: the name %q is used twice; each pool needs its own name (its servers are named %s-<index>)" .name .name) }}
{{- end }}
{{- $_ := set $seen .name true }}
{{- $tls := "" }}
{{- if $.Values.burstTls.enabled }}
{{- if not $.Values.burstTls.caCertificate }}
{{- fail (printf "burstTls.caCertificate: burst pool %q is reached over TLS, which needs the CA that signed its certificate (the Pulumi program's burstCaCertificate output); burstTls.enabled=false sends its traffic in plaintext" .name) }}
{{- end }}
{{- if not .tlsServerName }}
{{- fail (printf "pools.burst[%s].tlsServerName: the name the pool's certificate carries is needed to verify it (burstTls.enabled)" .name) }}
{{- end }}
{{- $tls = printf "ssl verify required ca-file %s sni str(%s) verifyhost %s check-sni %s ssl-min-ver %s" (include "spillover-gateway.burstCaFile" $) .tlsServerName .tlsServerName .tlsServerName $.Values.burstTls.minVersion }}
{{- end }}
{{- $pools = append $pools (dict "name" .name "address" .hostname "slots" .slots "weight" .weight "tls" $tls "maxconn" (.maxconnPerServer | default 0)) }}
{{- end }}
{{- toJson $pools }}
{{- end }}
