#!/usr/bin/env bash
# Lints dist/chart and renders it with the default values and with every
# switch flipped, failing on a lint warning, a template error or a
# rendering that lost what the switch is for. `make helm-lint` (and so
# `make test`) runs it; the e2e spec test/e2e/helm installs the chart.
#
# Environment: HELM (default bin/helm, built by hack/build-helm.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
HELM="${HELM:-bin/helm}"
CHART=dist/chart

fail() { echo "helm-lint: $*" >&2; exit 1; }

# A non-default install: every value that changes a template.
others=(
  --set image.repository=registry.example.com/vk-flightctl-provider,image.tag=v9.9.9
  --set replicas=2,leaderElection.enabled=false
  --set config.reconnectTimeout=10m,config.statusPollInterval=30s
  --set metrics.port=9090,metrics.serviceMonitor.enabled=true,metrics.serviceMonitor.labels.release=prometheus
  --set kubeletTLS.secretName=kubelet-tls,kubeletTLS.clientCAConfigMap=kube-root-ca.crt
  --set 'extraArgs={--pod-sync-workers=8,--v=1}'
  --set extraEnv[0].name=GODEBUG,extraEnv[0].value=http2debug=1
  --set podLabels.team=edge,podAnnotations.note=x,nodeSelector.role=infra,priorityClassName=high
  --set tolerations[0].key=infra,tolerations[0].operator=Exists
  --set imagePullSecrets[0].name=regcred,crds.keep=false
)

echo "== helm lint $CHART (defaults, then every switch flipped)"
"$HELM" lint --strict "$CHART"
"$HELM" lint --strict "$CHART" "${others[@]}"
"$HELM" lint --strict "$CHART" --set metrics.enabled=false,crds.install=false

echo "== helm template $CHART"
def="$("$HELM" template vk-flightctl "$CHART" -n vk-flightctl-system)"
alt="$("$HELM" template vk-flightctl "$CHART" -n vk-flightctl-system "${others[@]}")"
off="$("$HELM" template vk-flightctl "$CHART" -n vk-flightctl-system --set metrics.enabled=false,crds.install=false)"

has() { grep -qF -- "$2" <<<"$1" || fail "$3: rendering lacks '$2'"; }
hasnt() { ! grep -qF -- "$2" <<<"$1" || fail "$3: rendering has '$2'"; }
kinds() { grep '^kind: ' <<<"$1" | sort -u | tr '\n' ' '; }

want="kind: ClusterRole kind: ClusterRoleBinding kind: ConfigMap kind: CustomResourceDefinition kind: Deployment kind: Role kind: RoleBinding kind: ServiceAccount "
[ "$(kinds "$def")" = "$want" ] || fail "defaults render $(kinds "$def"), want $want"
has "$def" "helm.sh/resource-policy: keep" "defaults"
has "$def" "- --leader-elect" "defaults"
port="$(sed -n 's/^  port: \([0-9]*\)$/\1/p' "$CHART/values.yaml")"
has "$def" "- --metrics-bind-address=:$port" "defaults (metrics.port $port)"
has "$def" 'image: "vk-flightctl-provider:'"$(sed -n 's/^appVersion: "\(.*\)"/\1/p' "$CHART/Chart.yaml")"'"' "defaults (image tag = appVersion)"
hasnt "$def" "kind: ServiceMonitor" "defaults"
hasnt "$def" "volumes:" "defaults"

has "$alt" "kind: ServiceMonitor" "serviceMonitor.enabled"
has "$alt" "release: prometheus" "serviceMonitor.labels"
has "$alt" "port: 9090" "metrics.port (Service)"
has "$alt" "containerPort: 9090" "metrics.port (container)"
has "$alt" "- --metrics-bind-address=:9090" "metrics.port (flag)"
hasnt "$alt" "- --leader-elect" "leaderElection.enabled=false"
has "$alt" "replicas: 2" "replicas"
has "$alt" 'reconnectTimeout: "10m"' "config.reconnectTimeout"
has "$alt" 'image: "registry.example.com/vk-flightctl-provider:v9.9.9"' "image"
has "$alt" "- --kubelet-tls-cert-file=/etc/vk-flightctl/kubelet-tls/tls.crt" "kubeletTLS.secretName"
has "$alt" "secretName: kubelet-tls" "kubeletTLS.secretName (volume)"
has "$alt" "- --kubelet-client-ca-file=/etc/vk-flightctl/kubelet-client-ca/ca.crt" "kubeletTLS.clientCAConfigMap"
has "$alt" "name: kube-root-ca.crt" "kubeletTLS.clientCAConfigMap (volume)"
has "$alt" '- "--pod-sync-workers=8"' "extraArgs"
has "$alt" "name: GODEBUG" "extraEnv"
has "$alt" "role: infra" "nodeSelector"
has "$alt" 'priorityClassName: "high"' "priorityClassName"
has "$alt" "name: regcred" "imagePullSecrets"
hasnt "$alt" "helm.sh/resource-policy: keep" "crds.keep=false"

shard="$("$HELM" template vk-flightctl "$CHART" -n vk-flightctl-system --set replicas=3,sharding.enabled=true)"
has "$shard" "- --sharding" "sharding.enabled"
hasnt "$shard" "- --leader-elect" "sharding.enabled (replaces leader election)"
has "$shard" "replicas: 3" "sharding.enabled with replicas=3"
hasnt "$def" "- --sharding" "defaults"

has "$off" "- --metrics-bind-address=0" "metrics.enabled=false"
hasnt "$off" "kind: CustomResourceDefinition" "crds.install=false"
# values.schema.json refuses what the manager could not run with.
for bad in replicas=two replica=2 'config.reconnectTimeout=5 minutes' metrics.port=0 image.pullPolicy=Sometimes; do
  if "$HELM" template vk-flightctl "$CHART" --set "$bad" >/dev/null 2>&1; then
    fail "values.schema.json accepts --set $bad"
  fi
done
"$HELM" template vk-flightctl "$CHART" --set image.tag=1.2,config.reconnectTimeout=1.5h,global.x=y >/dev/null ||
  fail "values.schema.json refuses a numeric image tag, a fractional duration or a global value"
echo "helm lint and helm template: ok"
