#!/usr/bin/env bash
# Builds a real SPIRE server and agent from the Go module proxy into $(go env GOPATH)/bin,
# unless binaries of the pinned version are already there (a second run costs nothing).
# `go install github.com/spiffe/spire/cmd/spire-server@v1.13.3` refuses (the module's go.mod
# carries replace directives), so the commands are built from a scratch module that requires
# SPIRE as a tool dependency. Cost on a 2-core machine: ~6 min CPU, ~4 GB peak memory.
set -euo pipefail
SPIRE_VERSION="${SPIRE_VERSION:-v1.13.3}"
BIN="$(go env GOPATH)/bin"
mkdir -p "$BIN"

have() { [ -x "$BIN/$1" ] && "$BIN/$1" --version 2>&1 | grep -x "${SPIRE_VERSION#v}.*" >/dev/null; }

if ! have spire-server || ! have spire-agent; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cd "$work"
  go mod init scratch/spire >/dev/null 2>&1
  GOFLAGS=-mod=mod go get -tool \
    "github.com/spiffe/spire/cmd/spire-server@${SPIRE_VERSION}" \
    "github.com/spiffe/spire/cmd/spire-agent@${SPIRE_VERSION}"
  # One package at a time keeps the peak memory of the shared machine near 4 GB.
  for cmd in spire-server spire-agent; do
    GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$BIN/$cmd" "github.com/spiffe/spire/cmd/$cmd"
  done
fi
"$BIN/spire-server" --version 2>&1
"$BIN/spire-agent" --version 2>&1
