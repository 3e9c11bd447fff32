{{/*
Names and labels. Numbers from values arrive as float64 (as in Helm): compare them through `int`.
*/}}
{{- define "shadowrelay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shadowrelay.fullname" -}}
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

{{- define "shadowrelay.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shadowrelay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shadowrelay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "shadowrelay.labels" -}}
helm.sh/chart: {{ include "shadowrelay.chart" . }}
{{ include "shadowrelay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "shadowrelay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "shadowrelay.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "shadowrelay.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "shadowrelay.controlServiceName" -}}
{{- printf "%s-control" (include "shadowrelay.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shadowrelay.tokenSecretName" -}}
{{- default (printf "%s-control-token" (include "shadowrelay.fullname" .)) .Values.controlApi.existingSecret -}}
{{- end -}}

{{/*
The chart renders the users Secret itself (static users or the generated default user). The
default user is generated unless the server keeps its own key: persistence on and no etcd store.
*/}}
{{- define "shadowrelay.chartUsersSecret" -}}
{{- if and (not .Values.usersSecret) (or .Values.users (and .Values.generateDefaultUser (or (not .Values.persistence.enabled) (include "shadowrelay.etcdStore" .)))) -}}
true
{{- end -}}
{{- end -}}

{{/* Some Secret (the chart's or usersSecret) holds static users: "true" or "". */}}
{{- define "shadowrelay.hasStaticUsers" -}}
{{- if or .Values.usersSecret (include "shadowrelay.chartUsersSecret" .) -}}
true
{{- end -}}
{{- end -}}

{{- define "shadowrelay.usersSecretName" -}}
{{- default (printf "%s-users" (include "shadowrelay.fullname" .)) .Values.usersSecret -}}
{{- end -}}

{{/* An etcd store is configured, external (store.etcd.endpoints) or in the release: "true" or "". */}}
{{- define "shadowrelay.etcdStore" -}}
{{- if or .Values.store.etcd.endpoints .Values.etcd.enabled -}}
true
{{- end -}}
{{- end -}}

{{/*
The etcd cluster of etcd.enabled: its StatefulSet (also the members' name prefix), headless
Service (the members' DNS names) and client Service. Shortened so that pod names and the
StatefulSet's controller-revision-hash label stay within 63 characters.
*/}}
{{- define "shadowrelay.etcdName" -}}
{{- printf "%s-etcd" (include "shadowrelay.fullname" . | trunc 40 | trimSuffix "-") -}}
{{- end -}}

{{- define "shadowrelay.etcdHeadlessName" -}}
{{- printf "%s-headless" (include "shadowrelay.etcdName" .) -}}
{{- end -}}

{{/* The members' DNS domain: <pod>.<this>. */}}
{{- define "shadowrelay.etcdPeerDomain" -}}
{{- printf "%s.%s.svc.%s" (include "shadowrelay.etcdHeadlessName" .) .Release.Namespace .Values.etcd.clusterDomain -}}
{{- end -}}

{{- define "shadowrelay.etcdScheme" -}}
{{- ternary "https" "http" (not (empty .Values.etcd.tls.secretName)) -}}
{{- end -}}

{{/* Static bootstrap: every member's name and peer URL from the StatefulSet's stable DNS names. */}}
{{- define "shadowrelay.etcdInitialCluster" -}}
{{- $name := include "shadowrelay.etcdName" . -}}
{{- $domain := include "shadowrelay.etcdPeerDomain" . -}}
{{- $scheme := include "shadowrelay.etcdScheme" . -}}
{{- $members := list -}}
{{- range $i := until (int .Values.etcd.replicas) -}}
{{- $members = append $members (printf "%s-%d=%s://%s-%d.%s:2380" $name $i $scheme $name $i $domain) -}}
{{- end -}}
{{- join "," $members -}}
{{- end -}}

{{- define "shadowrelay.etcdSelectorLabels" -}}
app.kubernetes.io/name: {{ include "shadowrelay.name" . }}-etcd
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "shadowrelay.etcdLabels" -}}
helm.sh/chart: {{ include "shadowrelay.chart" . }}
{{ include "shadowrelay.etcdSelectorLabels" . }}
app.kubernetes.io/version: {{ .Values.etcd.image.tag | quote }}
app.kubernetes.io/component: store
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* --etcd-endpoints: the external endpoints, or the release's client Service. */}}
{{- define "shadowrelay.etcdEndpoints" -}}
{{- if .Values.etcd.enabled -}}
{{- printf "%s://%s.%s.svc.%s:2379" (include "shadowrelay.etcdScheme" .) (include "shadowrelay.etcdName" .) .Release.Namespace .Values.etcd.clusterDomain -}}
{{- else -}}
{{- join "," .Values.store.etcd.endpoints -}}
{{- end -}}
{{- end -}}

{{/* The Secret with ca.crt, tls.crt and tls.key the relay presents to etcd, or "". */}}
{{- define "shadowrelay.etcdClientTlsSecret" -}}
{{- if .Values.etcd.enabled -}}
{{- .Values.etcd.tls.secretName -}}
{{- else -}}
{{- .Values.store.etcd.tls.secretName -}}
{{- end -}}
{{- end -}}

{{/*
Who may reach the admin ports (control API, metrics; etcd's metrics): the release's namespace,
networkPolicy.allowedNamespaces and extraFrom, as JSON {"peers": [NetworkPolicyPeer...]}.
*/}}
{{- define "shadowrelay.adminPeers" -}}
{{- $peers := list -}}
{{- if .Values.networkPolicy.allowSameNamespace -}}
{{- $peers = append $peers (dict "podSelector" (dict)) -}}
{{- end -}}
{{- range .Values.networkPolicy.allowedNamespaces -}}
{{- $peers = append $peers (dict "namespaceSelector" (dict "matchLabels" (dict "kubernetes.io/metadata.name" .))) -}}
{{- end -}}
{{- range .Values.networkPolicy.extraFrom -}}
{{- $peers = append $peers . -}}
{{- end -}}
{{- dict "peers" $peers | toJson -}}
{{- end -}}

{{/* More than one pod may run at once (replicas or the autoscaler): "true" or "". */}}
{{- define "shadowrelay.multiReplica" -}}
{{- if or (gt (int .Values.replicaCount) 1) (and .Values.autoscaling.enabled (gt (int .Values.autoscaling.maxReplicas) 1)) -}}
true
{{- end -}}
{{- end -}}

{{/*
Relay ports as JSON {"ports": [{"name", "port"}]}: relay.port, then users' dedicated ports, then
relay.extraPorts, without duplicates. Each carries the protocols of "shadowrelay.protocols".
*/}}
{{- define "shadowrelay.relayPorts" -}}
{{- $main := int .Values.relay.port -}}
{{- $ports := list (dict "name" "relay" "port" $main) -}}
{{- $seen := dict (toString $main) true -}}
{{- $extra := list -}}
{{- range .Values.users -}}
{{- if .port -}}
{{- $extra = append $extra (int .port) -}}
{{- end -}}
{{- end -}}
{{- range .Values.relay.extraPorts -}}
{{- $extra = append $extra (int .) -}}
{{- end -}}
{{- range $extra -}}
{{- if not (hasKey $seen (toString .)) -}}
{{- $ports = append $ports (dict "name" (printf "p%d" .) "port" .) -}}
{{- $_ := set $seen (toString .) true -}}
{{- end -}}
{{- end -}}
{{- dict "ports" $ports | toJson -}}
{{- end -}}

{{/* Protocols of the relay ports, space separated, from relay.mode. */}}
{{- define "shadowrelay.protocols" -}}
{{- if eq .Values.relay.mode "tcp_only" -}}
TCP
{{- else if eq .Values.relay.mode "udp_only" -}}
UDP
{{- else -}}
TCP UDP
{{- end -}}
{{- end -}}

{{- define "shadowrelay.terminationGracePeriodSeconds" -}}
{{- $floor := add (int .Values.preStopSleepSeconds) (int .Values.relay.drainTimeoutSeconds) -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $floor 10 -}}
{{- else -}}
{{- int .Values.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/* Checks that stop the rendering with a message (templates/validate.yaml). */}}
{{- define "shadowrelay.validate" -}}
{{- $etcd := include "shadowrelay.etcdStore" . -}}
{{- if and .Values.store.etcd.endpoints .Values.etcd.enabled -}}
{{- fail "shadowrelay: store.etcd.endpoints and etcd.enabled are two ways to give the etcd store: set one of them (an external etcd, or the release's own cluster)" -}}
{{- end -}}
{{- if and .Values.etcd.enabled .Values.store.etcd.tls.secretName -}}
{{- fail "shadowrelay: store.etcd.tls.secretName is for an external etcd; with etcd.enabled the relay uses etcd.tls.secretName" -}}
{{- end -}}
{{- if ne (empty .Values.store.etcd.auth.user) (empty .Values.store.etcd.auth.passwordSecret) -}}
{{- fail "shadowrelay: store.etcd.auth.user and store.etcd.auth.passwordSecret go together (the user, and a Secret with its password under key \"password\")" -}}
{{- end -}}
{{- if and (not $etcd) (or .Values.store.etcd.tls.secretName .Values.store.etcd.auth.user) -}}
{{- fail "shadowrelay: store.etcd.tls and store.etcd.auth need an etcd store (store.etcd.endpoints or etcd.enabled)" -}}
{{- end -}}
{{- if .Values.store.etcd.tls.secretName -}}
{{- range .Values.store.etcd.endpoints -}}
{{- if not (hasPrefix "https://" .) -}}
{{- fail (printf "shadowrelay: store.etcd.tls.secretName is set, but endpoint %s is not https://" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (include "shadowrelay.multiReplica" .) .Values.persistence.enabled (not $etcd) -}}
{{- fail "shadowrelay: replicaCount > 1 (or autoscaling.maxReplicas > 1) cannot be combined with persistence.enabled=true without an etcd store: users created through the control API are kept in one pod's state directory and the other replicas would not know them. Share them through etcd (store.etcd.endpoints or etcd.enabled), or give the users as static users (users or usersSecret) and set persistence.enabled=false." -}}
{{- end -}}
{{- if and (include "shadowrelay.multiReplica" .) (not (include "shadowrelay.hasStaticUsers" .)) (not $etcd) -}}
{{- fail "shadowrelay: replicaCount > 1 needs static users (users, usersSecret or generateDefaultUser=true) or an etcd store: otherwise every replica generates its own key." -}}
{{- end -}}
{{- $floor := add (int .Values.preStopSleepSeconds) (int .Values.relay.drainTimeoutSeconds) -}}
{{- if le (int (include "shadowrelay.terminationGracePeriodSeconds" .)) $floor -}}
{{- fail (printf "shadowrelay: terminationGracePeriodSeconds must exceed preStopSleepSeconds + relay.drainTimeoutSeconds (%d)" $floor) -}}
{{- end -}}
{{- if hasKey .Values.relay.extraConfig "users" -}}
{{- fail "shadowrelay: give users in the users value (or usersSecret), not in relay.extraConfig" -}}
{{- end -}}
{{- if and .Values.controlApi.tls.enabled (not .Values.controlApi.tls.secretName) -}}
{{- fail "shadowrelay: controlApi.tls.enabled needs controlApi.tls.secretName (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- $control := int .Values.controlApi.port -}}
{{- $metrics := int .Values.metrics.port -}}
{{- if eq $control $metrics -}}
{{- fail "shadowrelay: controlApi.port and metrics.port must differ" -}}
{{- end -}}
{{- range (include "shadowrelay.relayPorts" . | fromJson).ports -}}
{{- if or (eq (int .port) $control) (eq (int .port) $metrics) -}}
{{- fail (printf "shadowrelay: relay port %d is also the control API or metrics port" (int .port)) -}}
{{- end -}}
{{- end -}}
{{- range .Values.users -}}
{{- $_ := required "shadowrelay: every entry of users needs a name" .name -}}
{{- $_ := required (printf "shadowrelay: user %s needs a password" .name) .password -}}
{{- end -}}
{{- end -}}

{{/* What the probes ask: gRPC health on the control port, or GET /healthz (no token) under TLS. */}}
{{- define "shadowrelay.probeAction" -}}
{{- if .Values.controlApi.tls.enabled -}}
httpGet:
  path: /healthz
  port: metrics
{{- else -}}
grpc:
  port: {{ int .Values.controlApi.port }}
{{- end -}}
{{- end -}}

{{/*
The init container's script: the config file from the ConfigMap plus, when a users Secret is
mounted, its users.json list as the "users" key. The ConfigMap's config.json is one JSON object
on one line (toJson), so its last "}" closes it.
*/}}
{{- define "shadowrelay.mergeConfigScript" -}}
set -eu
config="$(< "$CONFIG_IN")"
if [ -f "$USERS_IN" ]; then
  printf '%s,"users":%s}\n' "${config%\}*}" "$(< "$USERS_IN")" > "$CONFIG_OUT"
else
  printf '%s\n' "$config" > "$CONFIG_OUT"
fi
{{- end -}}

{{- define "shadowrelay.podTemplate" -}}
{{- $fullname := include "shadowrelay.fullname" . -}}
{{- $etcd := include "shadowrelay.etcdStore" . -}}
{{- $etcdTls := and $etcd (include "shadowrelay.etcdClientTlsSecret" .) -}}
{{- $ports := (include "shadowrelay.relayPorts" . | fromJson).ports -}}
{{- $protocols := splitList " " (include "shadowrelay.protocols" .) -}}
{{- $lowest := min (int .Values.controlApi.port) (int .Values.metrics.port) -}}
{{- range $ports -}}
{{- $lowest = min $lowest (int .port) -}}
{{- end -}}
metadata:
  labels:
    {{- include "shadowrelay.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    checksum/users: {{ .Values.users | toJson | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  serviceAccountName: {{ include "shadowrelay.serviceAccountName" . }}
  automountServiceAccountToken: false
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
    {{- if lt (int $lowest) 1024 }}
    sysctls:
      - name: net.ipv4.ip_unprivileged_port_start
        value: {{ $lowest | quote }}
    {{- end }}
  terminationGracePeriodSeconds: {{ include "shadowrelay.terminationGracePeriodSeconds" . }}
  initContainers:
    - name: config
      image: {{ include "shadowrelay.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      command:
        - /bin/bash
        - -c
        - |
          {{- include "shadowrelay.mergeConfigScript" . | nindent 10 }}
      env:
        - name: CONFIG_IN
          value: /etc/shadowrelay/config/config.json
        - name: USERS_IN
          value: /etc/shadowrelay/users/users.json
        - name: CONFIG_OUT
          value: /run/shadowrelay/config.json
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      resources:
        requests:
          cpu: 10m
          memory: 16Mi
        limits:
          cpu: 100m
          memory: 32Mi
      volumeMounts:
        - name: config
          mountPath: /etc/shadowrelay/config
          readOnly: true
        {{- if include "shadowrelay.hasStaticUsers" . }}
        - name: users
          mountPath: /etc/shadowrelay/users
          readOnly: true
        {{- end }}
        - name: run
          mountPath: /run/shadowrelay
  containers:
    - name: shadowrelay
      image: {{ include "shadowrelay.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - server
        - -c
        - /run/shadowrelay/config.json
        {{- range .Values.relay.listenAddresses }}
        - -s
        - {{ . | quote }}
        {{- end }}
        - -p
        - {{ int .Values.relay.port | quote }}
        - --state-dir
        - /var/lib/shadowrelay
        - --drain-timeout
        - {{ int .Values.relay.drainTimeoutSeconds | quote }}
        - --control-listen
        - {{ printf "0.0.0.0:%d" (int .Values.controlApi.port) | quote }}
        - --control-token-file
        - /etc/shadowrelay/control/token
        {{- if .Values.controlApi.tls.enabled }}
        - --control-tls-cert
        - /etc/shadowrelay/tls/tls.crt
        - --control-tls-key
        - /etc/shadowrelay/tls/tls.key
        {{- if .Values.controlApi.tls.requireClientCert }}
        - --control-tls-client-ca
        - /etc/shadowrelay/tls/ca.crt
        {{- end }}
        {{- else }}
        {{- /* Without TLS the token travels in plaintext inside the cluster (a ClusterIP Service
               behind the NetworkPolicy); the binary refuses that unless told. */}}
        - --control-insecure-plaintext
        {{- end }}
        - --metrics-listen
        - {{ printf "0.0.0.0:%d" (int .Values.metrics.port) | quote }}
        {{- if .Values.metrics.tokenSecret }}
        - --metrics-token-file
        - /etc/shadowrelay/metrics/token
        {{- end }}
        {{- if not .Values.metrics.perUser }}
        - --metrics-per-user=false
        {{- end }}
        {{- with .Values.relay.publicHost }}
        - --public-host
        - {{ . | quote }}
        {{- end }}
        {{- if $etcd }}
        {{- /* The shared store (deploy/README.md, "Several replicas with etcd"). */}}
        - --etcd-endpoints
        - {{ include "shadowrelay.etcdEndpoints" . | quote }}
        - --etcd-prefix
        - {{ .Values.store.etcd.prefix | quote }}
        {{- if $etcdTls }}
        - --etcd-ca
        - /etc/shadowrelay/etcd-tls/ca.crt
        - --etcd-cert
        - /etc/shadowrelay/etcd-tls/tls.crt
        - --etcd-key
        - /etc/shadowrelay/etcd-tls/tls.key
        {{- end }}
        {{- with .Values.store.etcd.auth.user }}
        - --etcd-user
        - {{ . | quote }}
        - --etcd-password-file
        - /etc/shadowrelay/etcd-auth/password
        {{- end }}
        {{- if not (kindIs "invalid" .Values.store.etcd.syncIntervalSeconds) }}
        - --etcd-sync-interval
        - {{ int .Values.store.etcd.syncIntervalSeconds | quote }}
        {{- end }}
        {{- if not (kindIs "invalid" .Values.store.etcd.leaseTtlSeconds) }}
        - --etcd-lease-ttl
        - {{ int .Values.store.etcd.leaseTtlSeconds | quote }}
        {{- end }}
        {{- end }}
        {{- range .Values.relay.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      ports:
        {{- range $ports }}
        {{- $port := . }}
        {{- range $protocols }}
        - name: {{ $port.name }}-{{ lower . }}
          containerPort: {{ int $port.port }}
          protocol: {{ . }}
        {{- end }}
        {{- end }}
        - name: control
          containerPort: {{ int .Values.controlApi.port }}
          protocol: TCP
        - name: metrics
          containerPort: {{ int .Values.metrics.port }}
          protocol: TCP
      readinessProbe:
        {{- include "shadowrelay.probeAction" . | nindent 8 }}
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      livenessProbe:
        {{- include "shadowrelay.probeAction" . | nindent 8 }}
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      {{- if gt (int .Values.preStopSleepSeconds) 0 }}
      lifecycle:
        preStop:
          exec:
            command:
              - sleep
              - {{ int .Values.preStopSleepSeconds | quote }}
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: run
          mountPath: /run/shadowrelay
          readOnly: true
        - name: control-token
          mountPath: /etc/shadowrelay/control
          readOnly: true
        {{- if .Values.controlApi.tls.enabled }}
        - name: control-tls
          mountPath: /etc/shadowrelay/tls
          readOnly: true
        {{- end }}
        {{- if .Values.metrics.tokenSecret }}
        - name: metrics-token
          mountPath: /etc/shadowrelay/metrics
          readOnly: true
        {{- end }}
        {{- if $etcdTls }}
        - name: etcd-tls
          mountPath: /etc/shadowrelay/etcd-tls
          readOnly: true
        {{- end }}
        {{- if and $etcd .Values.store.etcd.auth.user }}
        - name: etcd-auth
          mountPath: /etc/shadowrelay/etcd-auth
          readOnly: true
        {{- end }}
        - name: state
          mountPath: /var/lib/shadowrelay
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: config
      configMap:
        name: {{ $fullname }}-config
    {{- if include "shadowrelay.hasStaticUsers" . }}
    - name: users
      secret:
        secretName: {{ include "shadowrelay.usersSecretName" . }}
        defaultMode: 0440
        items:
          - key: users.json
            path: users.json
    {{- end }}
    - name: control-token
      secret:
        secretName: {{ include "shadowrelay.tokenSecretName" . }}
        defaultMode: 0440
        items:
          - key: token
            path: token
    {{- if .Values.controlApi.tls.enabled }}
    - name: control-tls
      secret:
        secretName: {{ .Values.controlApi.tls.secretName }}
        defaultMode: 0440
    {{- end }}
    {{- with .Values.metrics.tokenSecret }}
    - name: metrics-token
      secret:
        secretName: {{ . }}
        defaultMode: 0440
        items:
          - key: token
            path: token
    {{- end }}
    {{- if $etcdTls }}
    - name: etcd-tls
      secret:
        secretName: {{ include "shadowrelay.etcdClientTlsSecret" . }}
        defaultMode: 0440
        items:
          - key: ca.crt
            path: ca.crt
          - key: tls.crt
            path: tls.crt
          - key: tls.key
            path: tls.key
    {{- end }}
    {{- if and $etcd .Values.store.etcd.auth.user }}
    - name: etcd-auth
      secret:
        secretName: {{ .Values.store.etcd.auth.passwordSecret }}
        defaultMode: 0440
        items:
          - key: password
            path: password
    {{- end }}
    - name: run
      emptyDir:
        medium: Memory
        sizeLimit: 1Mi
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if not .Values.persistence.enabled }}
    - name: state
      emptyDir:
        sizeLimit: 64Mi
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
