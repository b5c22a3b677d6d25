{{/* Chart name, overridable. */}}
{{- define "smarthost.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every object's name: the release, plus the chart unless the release already names it. */}}
{{- define "smarthost.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects; call with (dict "ctx" $ "component" "ingress"). */}}
{{- define "smarthost.componentName" -}}
{{- printf "%s-%s" (include "smarthost.fullname" .ctx | trunc 50 | trimSuffix "-") .component -}}
{{- end -}}

{{- define "smarthost.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object; call with (dict "ctx" $ "component" "ingress"). */}}
{{- define "smarthost.labels" -}}
helm.sh/chart: {{ include "smarthost.chart" .ctx }}
{{ include "smarthost.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: {{ include "smarthost.name" .ctx }}
{{- end -}}

{{/* Labels that select one component's pods; never change them (selectors are immutable). */}}
{{- define "smarthost.selectorLabels" -}}
app.kubernetes.io/name: {{ include "smarthost.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Pod label of the three services, selected by the metrics Service (Redis has no /metrics). */}}
{{- define "smarthost.metricsLabel" -}}
smarthost.io/metrics: "true"
{{- end -}}

{{/* image reference; call with (dict "ctx" $ "image" .Values.ingress.image). */}}
{{- define "smarthost.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* Replicas the component runs at least: what PodDisruptionBudgets are decided on. */}}
{{- define "smarthost.minReplicas" -}}
{{- if .autoscaling.enabled -}}
{{- .autoscaling.minReplicas -}}
{{- else -}}
{{- .replicaCount -}}
{{- end -}}
{{- end -}}

{{/* Spread replicas over zones, then nodes, unless the values set constraints; call with (dict "ctx" $ "component" "ingress" "values" .Values.ingress). */}}
{{- define "smarthost.topologySpread" -}}
{{- if .values.topologySpreadConstraints }}
{{- toYaml .values.topologySpreadConstraints }}
{{- else }}
{{- range $key := list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
- maxSkew: 1
  topologyKey: {{ $key }}
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "smarthost.selectorLabels" $ | nindent 6 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod scheduling and security shared by the three services; call with (dict "ctx" $ "component" "ingress" "values" .Values.ingress). */}}
{{- define "smarthost.podSpec" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- if .ctx.Values.hostNetwork }}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
topologySpreadConstraints:
  {{- include "smarthost.topologySpread" . | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Name of the Secret holding the Redis password, or nothing when there is none. */}}
{{- define "smarthost.redisSecretName" -}}
{{- if .Values.redis.enabled -}}
{{- if .Values.redis.auth.enabled -}}
{{- default (include "smarthost.componentName" (dict "ctx" . "component" "redis")) .Values.redis.auth.existingSecret -}}
{{- end -}}
{{- else -}}
{{- .Values.redis.external.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "smarthost.redisPasswordKey" -}}
{{- if .Values.redis.enabled -}}
{{- .Values.redis.auth.existingSecretPasswordKey -}}
{{- else -}}
{{- .Values.redis.external.passwordKey -}}
{{- end -}}
{{- end -}}

{{/* Where Redis is, host and port (for KEDA and NetworkPolicies). */}}
{{- define "smarthost.redisHost" -}}
{{- if .Values.redis.enabled -}}
{{- printf "%s.%s.svc.%s" (include "smarthost.componentName" (dict "ctx" . "component" "redis")) .Release.Namespace .Values.clusterDomain -}}
{{- else -}}
{{- required "redis.external.host is required when redis.enabled is false" .Values.redis.external.host -}}
{{- end -}}
{{- end -}}

{{- define "smarthost.redisPort" -}}
{{- if .Values.redis.enabled -}}
{{- .Values.redis.port -}}
{{- else -}}
{{- .Values.redis.external.port -}}
{{- end -}}
{{- end -}}

{{/* SMARTHOST_REDIS_URL, with the password from a Secret: Kubernetes expands
$(REDIS_PASSWORD) because that variable is defined first. KEDA reads
REDIS_PASSWORD from the delivery container too. */}}
{{- define "smarthost.redisEnv" -}}
{{- $secret := include "smarthost.redisSecretName" . -}}
{{- $passwordKey := include "smarthost.redisPasswordKey" . -}}
{{- $urlKey := and (not .Values.redis.enabled) .Values.redis.external.urlKey -}}
{{- if and $secret $passwordKey }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $passwordKey }}
      {{- if $urlKey }}
      # The URL carries the password; this copy only serves KEDA.
      optional: true
      {{- end }}
{{- end }}
- name: SMARTHOST_REDIS_URL
{{- if $urlKey }}
  valueFrom:
    secretKeyRef:
      name: {{ required "redis.external.existingSecret is required with redis.external.urlKey" $secret }}
      key: {{ $urlKey }}
{{- else }}
{{- $scheme := ternary "rediss" "redis" (and (not .Values.redis.enabled) .Values.redis.external.tls) -}}
{{- $db := ternary 0 .Values.redis.external.db .Values.redis.enabled -}}
{{- $userinfo := ternary ":$(REDIS_PASSWORD)@" "" (and $secret $passwordKey | empty | not) }}
  value: {{ printf "%s://%s%s:%v/%v" $scheme $userinfo (include "smarthost.redisHost" .) (include "smarthost.redisPort" .) $db | quote }}
{{- end }}
{{- if and (not .Values.redis.enabled) .Values.redis.external.sentinels }}
- name: SMARTHOST_REDIS_SENTINELS
  value: {{ join "," .Values.redis.external.sentinels | quote }}
- name: SMARTHOST_REDIS_SENTINEL_MASTER
  value: {{ .Values.redis.external.sentinelMaster | quote }}
{{- end }}
{{- end -}}

{{/* Environment every service reads. */}}
{{- define "smarthost.commonEnv" -}}
- name: SMARTHOST_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- with .Values.hostname }}
- name: SMARTHOST_HOSTNAME
  value: {{ . | quote }}
{{- end }}
{{- include "smarthost.redisEnv" . }}
{{- end -}}

{{/* Probes on the services' /healthz and /readyz. */}}
{{- define "smarthost.httpProbes" -}}
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  periodSeconds: 5
  failureThreshold: 2
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: 10
  failureThreshold: 3
{{- end -}}

{{/* CPU HorizontalPodAutoscaler of a Deployment; call with (dict "ctx" $ "component" "ingress" "values" .Values.ingress). */}}
{{- define "smarthost.hpa" -}}
{{- $as := .values.autoscaling -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "smarthost.componentName" . }}
  labels:
    {{- include "smarthost.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "smarthost.componentName" . }}
  minReplicas: {{ $as.minReplicas }}
  maxReplicas: {{ $as.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $as.targetCPUUtilizationPercentage }}
{{- end -}}

{{/* PodDisruptionBudget, only where more than one replica runs; call like smarthost.hpa. */}}
{{- define "smarthost.pdb" -}}
{{- if and .values.podDisruptionBudget.enabled (gt (int (include "smarthost.minReplicas" .values)) 1) -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "smarthost.componentName" . }}
  labels:
    {{- include "smarthost.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "smarthost.selectorLabels" . | nindent 6 }}
{{- end -}}
{{- end -}}

{{/* NetworkPolicy egress to cluster DNS, which every service needs. */}}
{{- define "smarthost.egressDns" -}}
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end -}}

{{/* NetworkPolicy egress to Redis: its pods, or anywhere on its port when external. */}}
{{- define "smarthost.egressRedis" -}}
- ports:
    - {port: {{ include "smarthost.redisPort" . }}, protocol: TCP}
  {{- if .Values.redis.enabled }}
  to:
    - podSelector:
        matchLabels:
          {{- include "smarthost.selectorLabels" (dict "ctx" . "component" "redis") | nindent 10 }}
  {{- end }}
{{- end -}}

{{/* NetworkPolicy egress to the spool (PostgreSQL, wherever it runs), when there is one. */}}
{{- define "smarthost.egressSpool" -}}
{{- if .Values.queue.spool.existingSecret }}
- ports:
    - {port: {{ .Values.queue.spool.port }}, protocol: TCP}
{{- end }}
{{- end -}}

{{/* NetworkPolicy ingress rule for Prometheus; call with (dict "ctx" $ "port" 9100). */}}
{{- define "smarthost.ingressMetrics" -}}
- ports:
    - {port: {{ .port }}, protocol: TCP}
  {{- with .ctx.Values.networkPolicy.metricsFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* The queue's disk tier, for the ingress and delivery: the URL from a Secret. */}}
{{- define "smarthost.spoolEnv" -}}
{{- with .Values.queue.spool.existingSecret }}
- name: SMARTHOST_SPOOL_URL
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.queue.spool.urlKey }}
{{- end }}
{{- end -}}
