{{- define "weir.name" -}}{{ .Release.Name }}{{- end -}}
{{- define "weir.labels" -}}
app.kubernetes.io/name: weir
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
{{- define "weir.selector" -}}
app.kubernetes.io/name: weir
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- /*
terminationGracePeriodSeconds: the preStop sleep runs inside the grace period, then weir
drains for --drain-timeout; 5 s more so the kubelet's SIGKILL never cuts the drain short.
*/ -}}
{{- define "weir.terminationGracePeriodSeconds" -}}
{{ add .Values.preStopSleepSeconds .Values.drainTimeoutSeconds 5 }}
{{- end -}}
{{- /* Refuse value combinations the schema cannot express clearly. */ -}}
{{- define "weir.validate" -}}
{{- if and .Values.hostPorts.enabled (ne .Values.kind "DaemonSet") -}}
{{- fail "hostPorts.enabled needs kind: DaemonSet (several Deployment pods on one node would fight over the node's ports)" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (ne .Values.kind "Deployment") -}}
{{- fail "autoscaling.enabled needs kind: Deployment (a DaemonSet runs one pod per node)" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (not .Values.autoscaling.targetCPUUtilizationPercentage) (not .Values.autoscaling.targetMemoryUtilizationPercentage) -}}
{{- fail "autoscaling.enabled needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" -}}
{{- end -}}
{{- if and (eq .Values.service.externalTrafficPolicy "Local") (eq .Values.service.type "ClusterIP") -}}
{{- fail "service.externalTrafficPolicy: Local needs service.type LoadBalancer or NodePort" -}}
{{- end -}}
{{- end -}}
{{- /* The pod template of the Deployment and of the DaemonSet. */ -}}
{{- define "weir.podTemplate" -}}
metadata:
  labels: {{- include "weir.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.podAnnotations }}
  annotations: {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "weir.name" . }}
  # weir watches the API server with this pod's ServiceAccount token (the ServiceAccount
  # itself does not automount: other pods using it get no token by accident).
  automountServiceAccountToken: true
  # weir reads no Service environment variables; thousands of them slow every start.
  enableServiceLinks: false
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ include "weir.terminationGracePeriodSeconds" . }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: weir
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - run
        - --controller-name={{ .Values.ingressClass.controller }}
        - --http-addr=0.0.0.0:{{ .Values.ports.http }}
        - --https-addr=0.0.0.0:{{ .Values.ports.https }}
        - --admin-addr=0.0.0.0:{{ .Values.ports.admin }}
        # Configuration dumps stay on the pod's loopback (kubectl port-forward reaches it).
        - --debug-addr=127.0.0.1:{{ .Values.ports.debug }}
        - --drain-timeout={{ .Values.drainTimeoutSeconds }}s
        - --publish-service={{ .Release.Namespace }}/{{ include "weir.name" . }}
        - --lease-name={{ .Values.leaseName }}
        - --access-log={{ .Values.accessLog }}
        {{- if .Values.workers }}
        - --workers={{ .Values.workers }}
        {{- end }}
        {{- if .Values.watchNamespace }}
        - --watch-namespace={{ .Values.watchNamespace }}
        {{- end }}
        {{- if .Values.zone }}
        - --zone={{ .Values.zone }}
        {{- end }}
        {{- range .Values.serveIngressClasses }}
        - --ingress-class={{ . }}
        {{- end }}
        - --annotations-prefix={{ .Values.annotationsPrefix }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: POD_NAMESPACE
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
      ports:
        {{- if .Values.hostPorts.enabled }}
        - {name: http, containerPort: {{ .Values.ports.http }}, hostPort: {{ .Values.hostPorts.http }}, protocol: TCP}
        - {name: https, containerPort: {{ .Values.ports.https }}, hostPort: {{ .Values.hostPorts.https }}, protocol: TCP}
        {{- else }}
        - {name: http, containerPort: {{ .Values.ports.http }}, protocol: TCP}
        - {name: https, containerPort: {{ .Values.ports.https }}, protocol: TCP}
        {{- end }}
        - {name: admin, containerPort: {{ .Values.ports.admin }}, protocol: TCP}
      readinessProbe:
        httpGet: {path: /readyz, port: admin}
        periodSeconds: 2
      livenessProbe:
        httpGet: {path: /healthz, port: admin}
        periodSeconds: 10
      {{- if .Values.preStopSleepSeconds }}
      lifecycle:
        # Keep serving while the endpoint removal reaches kube-proxy and load balancers; the
        # image has no shell or sleep binary, so the kubelet sleeps (values.yaml says more).
        preStop:
          sleep: {seconds: {{ .Values.preStopSleepSeconds }}}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        allowPrivilegeEscalation: false
        privileged: false
        readOnlyRootFilesystem: true
        capabilities: {drop: ["ALL"]}
      resources: {{- toYaml .Values.resources | nindent 8 }}
  {{- with .Values.nodeSelector }}
  nodeSelector: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.affinity }}
  affinity: {{- toYaml .Values.affinity | nindent 4 }}
  {{- else if and .Values.defaultScheduling (eq .Values.kind "Deployment") }}
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels: {{- include "weir.selector" . | nindent 16 }}
  {{- end }}
  {{- if .Values.topologySpreadConstraints }}
  topologySpreadConstraints: {{- toYaml .Values.topologySpreadConstraints | nindent 4 }}
  {{- else if and .Values.defaultScheduling (eq .Values.kind "Deployment") }}
  # Counted per revision (matchLabelKeys: pod-template-hash), so a rolling update spreads
  # the new pods too.
  topologySpreadConstraints:
    {{- range list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
    - maxSkew: 1
      topologyKey: {{ . }}
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels: {{- include "weir.selector" $ | nindent 10 }}
      matchLabelKeys: [pod-template-hash]
    {{- end }}
  {{- end }}
{{- end -}}
