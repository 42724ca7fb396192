{{/* Release-scoped name prefix. */}}
{{- define "precinct.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: <fullname>-<component>. */}}
{{- define "precinct.name" -}}
{{- printf "%s-%s" (include "precinct.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every pod of this release carries (the default-deny selects them). */}}
{{- define "precinct.releaseSelector" -}}
app.kubernetes.io/part-of: precinct
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "precinct.selectorLabels" -}}
{{ include "precinct.releaseSelector" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "precinct.labels" -}}
{{ include "precinct.selectorLabels" . }}
app.kubernetes.io/name: precinct
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* An image reference from {repository, tag, digest}; never `latest`, never empty. */}}
{{- define "precinct.imageRef" -}}
{{- $tag := .image.tag | default .default | toString -}}
{{- if or (eq $tag "") (eq (lower $tag) "latest") -}}
{{- fail (printf "%s: image tag must be a version, not %q" .what $tag) -}}
{{- end -}}
{{- if .image.digest -}}
{{- if not (hasPrefix "sha256:" .image.digest) -}}
{{- fail (printf "%s: image digest must start with sha256:" .what) -}}
{{- end -}}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "precinct.image" -}}
{{- include "precinct.imageRef" (dict "image" .Values.image "default" .Chart.AppVersion "what" "image") -}}
{{- end -}}

{{/* Pod-level spec shared by every component. */}}
{{- define "precinct.podCommon" -}}
serviceAccountName: {{ include "precinct.name" . }}
automountServiceAccountToken: {{ .automountToken | default false }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
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

{{/* The Workload API socket volume (CSI driver or host path) and a writable /tmp. */}}
{{- define "precinct.spiffeVolume" -}}
- name: spiffe-workload-api
{{- if eq .Values.spiffe.socket.source "csi" }}
  csi:
    driver: {{ .Values.spiffe.socket.csiDriver }}
    readOnly: true
{{- else if eq .Values.spiffe.socket.source "hostPath" }}
  hostPath:
    path: {{ .Values.spiffe.socket.hostPath }}
    type: Directory
{{- else }}
{{- fail "spiffe.socket.source must be csi or hostPath" }}
{{- end }}
{{- end -}}

{{- define "precinct.spiffeMount" -}}
- name: spiffe-workload-api
  mountPath: {{ .Values.spiffe.socket.mountPath }}
  readOnly: true
{{- end -}}

{{- define "precinct.spiffeEnv" -}}
- name: SPIFFE_ENDPOINT_SOCKET
  value: {{ printf "unix://%s/%s" .Values.spiffe.socket.mountPath .Values.spiffe.socket.name | quote }}
{{- end -}}

{{- define "precinct.commonEnv" -}}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: NODE_OPTIONS
  value: "--max-old-space-size=192"
{{- end -}}

{{/* An httpGet probe on a named plain port; values may override it entirely. */}}
{{- define "precinct.probe" -}}
{{- if .override -}}
{{- toYaml .override -}}
{{- else -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
periodSeconds: 10
timeoutSeconds: 3
failureThreshold: 3
{{- end -}}
{{- end -}}

{{/* NetworkPolicy peers for "any pod of this release". */}}
{{- define "precinct.releasePeer" -}}
- podSelector:
    matchLabels:
      {{- include "precinct.releaseSelector" . | nindent 6 }}
{{- end -}}

{{/* NetworkPolicy peer selecting one component's pods. */}}
{{- define "precinct.componentPeer" -}}
- podSelector:
    matchLabels:
      {{- include "precinct.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/* Egress to DNS and to the Kubernetes API server. */}}
{{- define "precinct.egressDns" -}}
- to:
    {{- toYaml .Values.networkPolicy.dns | nindent 4 }}
  ports:
    - { protocol: UDP, port: 53 }
    - { protocol: TCP, port: 53 }
{{- end -}}

{{- define "precinct.egressKubeApi" -}}
- to:
    {{- range .Values.networkPolicy.kubeApiServer.cidrs }}
    - ipBlock:
        cidr: {{ . | quote }}
    {{- end }}
  ports:
    {{- range .Values.networkPolicy.kubeApiServer.ports }}
    - { protocol: TCP, port: {{ . }} }
    {{- end }}
{{- end -}}

{{/* A ClusterSPIFFEID for one component: ID from namespace and ServiceAccount only. */}}
{{- define "precinct.clusterSPIFFEID" -}}
{{- if .root.Values.spiffe.clusterSPIFFEID.enabled }}
---
apiVersion: spire.spiffe.io/v1alpha1
kind: ClusterSPIFFEID
metadata:
  name: {{ printf "%s-%s-%s%s" .root.Release.Namespace .root.Release.Name .component (ternary (printf "-%v" .nameSuffix) "" (hasKey . "nameSuffix")) | trunc 63 | trimSuffix "-" }}
  labels:
    {{- include "precinct.labels" . | nindent 4 }}
spec:
  {{- with .root.Values.spiffe.clusterSPIFFEID.className }}
  className: {{ . | quote }}
  {{- end }}
  spiffeIDTemplate: {{ .idTemplate | default "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}" | quote }}
  {{- with .root.Values.spiffe.clusterSPIFFEID.ttl }}
  ttl: {{ . | quote }}
  {{- end }}
  {{- with .dnsNames }}
  dnsNameTemplates:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .root.Release.Namespace }}
  podSelector:
    matchLabels:
      {{- include "precinct.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}
