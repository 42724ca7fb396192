#!/usr/bin/env bash
# Builds helm from the Go module proxy into $(go env GOPATH)/bin, unless the pinned version is
# already there. test/deploy lints and renders deploy/helm/precinct with it.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
BIN="$(go env GOPATH)/bin"
mkdir -p "$BIN"
if ! { [ -x "$BIN/helm" ] && "$BIN/helm" version --template '{{.Version}}' 2>/dev/null | grep -x "$HELM_VERSION" >/dev/null; }; then
  # As helm's Makefile does: the version, and the Kubernetes version `helm template` and
  # `helm lint` assume by default (client-go v0.N -> Kubernetes 1.N), instead of v1.20.
  k8s_minor=$(go mod download -json "helm.sh/helm/v3@${HELM_VERSION}" | python3 -c \
    'import json,re,sys; print(re.search(r"k8s.io/client-go v0\.(\d+)", open(json.load(sys.stdin)["GoMod"]).read()).group(1))')
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=${k8s_minor}"
  done
  GOFLAGS=-mod=mod CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
fi
"$BIN/helm" version --template '{{.Version}}{{"\n"}}'
