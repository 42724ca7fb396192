{{/* PodDisruptionBudget and HorizontalPodAutoscaler of a scalable component. */}}
{{- define "precinct.pdb" -}}
{{- if .values.pdb }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "precinct.name" . }}
  labels:
    {{- include "precinct.labels" . | nindent 4 }}
spec:
  {{- toYaml .values.pdb | nindent 2 }}
  selector:
    matchLabels:
      {{- include "precinct.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{- define "precinct.hpa" -}}
{{- if and .values.autoscaling .values.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "precinct.name" . }}
  labels:
    {{- include "precinct.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "precinct.name" . }}
  minReplicas: {{ .values.autoscaling.minReplicas }}
  maxReplicas: {{ .values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .values.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end -}}
