{{/*
kpod.name: the chart's name (app.kubernetes.io/name), "kpod" unless nameOverride.
*/}}
{{- define "kpod.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
kpod.fullname: the name of every object. The release name when it already says kpod
(`helm install kpod ...`, `helm install kpod-metrics ...`), else <release>-kpod.
*/}}
{{- define "kpod.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "kpod.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kpod.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kpod.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kpod.labels" -}}
{{ include "kpod.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "kpod.serviceAccountName" -}}
{{- if and .Values.kubernetes.enabled .Values.serviceAccount.create -}}
{{- default (include "kpod.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
kpod.receiver: receivers.kpod, the receiver values over what the chart sets itself. Empty
maps (collectors: {}, filters: {}) are left out: they change nothing.
*/}}
{{- define "kpod.receiver" -}}
{{- $base := dict "node_name" "${env:K8S_NODE_NAME}" "proc_root" "/host/proc" "kubernetes" (dict "enabled" .Values.kubernetes.enabled) -}}
{{- $r := mustMergeOverwrite $base (deepCopy (.Values.receiver | default dict)) -}}
{{- range $k, $v := $r -}}
{{- if and (kindIs "map" $v) (empty $v) -}}
{{- $_ := unset $r $k -}}
{{- end -}}
{{- end -}}
{{- toYaml $r -}}
{{- end -}}

{{/*
kpod.topology: "true" when the receiver runs the topology collector (profile comprehensive
unless collectors.topology.enabled is false, or collectors.topology.enabled true), whose peer
names need every pod, Service and EndpointSlice of the cluster.
*/}}
{{- define "kpod.topology" -}}
{{- $r := .Values.receiver | default dict -}}
{{- $t := get ($r.collectors | default dict) "topology" | default dict -}}
{{- if hasKey $t "enabled" -}}
{{- ternary "true" "" (eq (toString $t.enabled) "true") -}}
{{- else -}}
{{- ternary "true" "" (eq (toString $r.profile) "comprehensive") -}}
{{- end -}}
{{- end -}}

{{/*
kpod.baseConfig: the collector config built from the values, before .Values.config.

  kpod ─► memory_limiter ─► [k8s_attributes] ─► [resource] ─► batch ─► [prometheus] [otlp_http]
*/}}
{{- define "kpod.baseConfig" -}}
{{- $v := .Values -}}
receivers:
  kpod:
    {{- include "kpod.receiver" . | nindent 4 }}
processors:
  # First in the pipeline: refuses data before the collector itself runs out of memory, in
  # percent of the container's memory limit.
  memory_limiter:
    check_interval: 1s
    limit_percentage: 80
    spike_limit_percentage: 20
  {{- if $v.kubernetes.enabled }}
  # Names, namespace and labels of this node's pods, associated on the ids kpod reads from
  # the cgroup path. Pod-level metadata only: the ClusterRole needs pods and nothing else.
  k8s_attributes:
    auth_type: serviceAccount
    passthrough: false
    filter:
      node_from_env_var: K8S_NODE_NAME
    extract:
      metadata:
        - k8s.pod.name
        - k8s.pod.uid
        - k8s.namespace.name
        - k8s.node.name
        - k8s.container.name
      {{- with $v.kubernetes.podLabels }}
      labels:
        {{- range . }}
        - key: {{ . | quote }}
          from: pod
        {{- end }}
      {{- end }}
    pod_association:
      - sources:
          - from: resource_attribute
            name: k8s.pod.uid
      - sources:
          - from: resource_attribute
            name: container.id
  {{- end }}
  {{- if $v.clusterName }}
  resource:
    attributes:
      - key: k8s.cluster.name
        value: {{ $v.clusterName | quote }}
        action: upsert
  {{- end }}
  batch:
    timeout: 5s
    send_batch_size: 4096
exporters:
  {{- if $v.prometheus.enabled }}
  prometheus:
    endpoint: {{ printf "0.0.0.0:%v" $v.prometheus.port | quote }}
    # Resource attributes (pod, namespace, container, cluster, labels) as labels of every
    # series; without this the series of all pods collapse into one label set.
    resource_constant_labels:
      included: ["k8s.*", "container.*"]
    metric_expiration: {{ $v.prometheus.metricExpiration }}
  {{- end }}
  {{- if $v.otlp.enabled }}
  {{- if not $v.otlp.endpoint }}
  {{- fail "otlp.enabled needs otlp.endpoint (e.g. http://otel-gateway.observability:4318)" }}
  {{- end }}
  otlp_http:
    {{- if hasSuffix "/v1/metrics" $v.otlp.endpoint }}
    metrics_endpoint: {{ $v.otlp.endpoint | quote }}
    {{- else }}
    endpoint: {{ $v.otlp.endpoint | quote }}
    {{- end }}
    {{- with $v.otlp.headers }}
    headers:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    compression: {{ $v.otlp.compression }}
    sending_queue:
      enabled: true
      sizer: items
      queue_size: 50000
    retry_on_failure:
      enabled: true
  {{- end }}
extensions:
  health_check:
    endpoint: 0.0.0.0:13133
service:
  extensions: [health_check]
  pipelines:
    metrics:
      receivers: [kpod]
      processors:
        - memory_limiter
        {{- if $v.kubernetes.enabled }}
        - k8s_attributes
        {{- end }}
        {{- if $v.clusterName }}
        - resource
        {{- end }}
        - batch
      exporters:
        {{- if $v.prometheus.enabled }}
        - prometheus
        {{- end }}
        {{- if $v.otlp.enabled }}
        - otlp_http
        {{- end }}
  telemetry:
    logs:
      level: info
    metrics:
      level: basic
      readers:
        - pull:
            exporter:
              prometheus:
                host: 0.0.0.0
                port: 8888
{{- end -}}

{{/*
kpod.config: the collector config, .Values.config merged over kpod.baseConfig.
*/}}
{{- define "kpod.config" -}}
{{- if not (or .Values.prometheus.enabled .Values.otlp.enabled) -}}
{{- fail "nothing would be exported: enable prometheus or otlp" -}}
{{- end -}}
{{- $base := include "kpod.baseConfig" . | fromYaml -}}
{{- if hasKey $base "Error" -}}
{{- fail (printf "kpod chart: the collector config does not parse: %s" $base.Error) -}}
{{- end -}}
{{- toYaml (mustMergeOverwrite $base (deepCopy (.Values.config | default dict))) -}}
{{- end -}}
