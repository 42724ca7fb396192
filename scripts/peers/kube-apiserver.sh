#!/usr/bin/env bash
# Builds a real kube-apiserver, kube-controller-manager and etcd from the Go module proxy into
# $(go env GOPATH)/bin, unless binaries of the pinned versions are already there.
# kube-dev is diffed against these (test/kube-real). k8s.io/kubernetes is not meant to be used
# as a module: each of its staging modules (k8s.io/api, ...) must be mapped to its published
# v0.x release, which is what the scratch go.mod below does.
set -euo pipefail
KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.4}"
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"
BIN="$(go env GOPATH)/bin"
mkdir -p "$BIN"

have() { [ -x "$BIN/$1" ] && "$BIN/$1" --version 2>/dev/null | grep "$2" >/dev/null; }

if ! have etcd "${ETCD_VERSION#v}"; then
  work=$(mktemp -d)
  (cd "$work" && go mod init scratch/etcd >/dev/null 2>&1 &&
    GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >/dev/null &&
    GOFLAGS=-mod=mod go build -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "$work"
fi

if ! have kube-apiserver "$KUBE_VERSION" || ! have kube-controller-manager "$KUBE_VERSION"; then
  work=$(mktemp -d)
  cd "$work"
  proxy="$(go env GOPROXY | cut -d, -f1)"
  go mod init scratch/kube >/dev/null 2>&1
  # The staging modules are the ones k8s.io/kubernetes replaces with ./staging/... paths.
  mods=$(go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["GoMod"])' | xargs grep -oE '^\s*k8s.io/[a-z0-9-]+ => \./staging' | awk '{print $1}')
  for m in $mods; do echo "replace $m => $m ${STAGING_VERSION}" >>go.mod; done
  echo "require k8s.io/kubernetes ${KUBE_VERSION}" >>go.mod
  GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || true
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${KUBE_VERSION#v1.}"
  for cmd in kube-apiserver kube-controller-manager; do
    GOFLAGS=-mod=mod go build -ldflags "$ldflags" -o "$BIN/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
  cd / && rm -rf "$work"
fi
"$BIN/kube-apiserver" --version
"$BIN/etcd" --version | sed -n 1p
