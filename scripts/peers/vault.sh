#!/usr/bin/env bash
# Builds HashiCorp Vault from the Go module proxy into $(go env GOPATH)/bin, unless the pinned
# version is already there. test/secrets runs it in `-dev` mode on loopback as the secrets
# manager peer (OpenBao speaks the same HTTP API; no registry here serves OpenBao).
# Vault's licence (BUSL-1.1) is fine for a test peer; nothing here ships it.
#
# The module's go.mod replaces github.com/hashicorp/vault/{api,sdk} with ./api and ./sdk, which a
# module download does not contain. The published api v1.22.0 and sdk v0.21.0 are the versions
# go.mod requires, but three call sites in v1.21.4 were written against the in-tree sdk:
#   - framework.Backend.ActivationFunc takes a third (string) argument in sdk v0.21.0
#     (vault/identity_store.go, vault/logical_system_activation_flags.go);
#   - keysutil.LockManager.RestorePolicy returns only an error
#     (builtin/logical/transit/path_restore.go).
# They are fixed with sed on a private copy of the module source; each sed is checked.
set -euo pipefail
VAULT_VERSION="${VAULT_VERSION:-v1.21.4}"
BIN="$(go env GOPATH)/bin"
mkdir -p "$BIN"
if [ -x "$BIN/vault" ] && "$BIN/vault" version 2>/dev/null | grep -E "^Vault ${VAULT_VERSION}[ ,]" >/dev/null; then
  "$BIN/vault" version
  exit 0
fi
src_dir=$(GOFLAGS=-mod=mod go mod download -json "github.com/hashicorp/vault@${VAULT_VERSION}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
work=$(mktemp -d "${TMPDIR:-/tmp}/vault-src.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$src_dir/." "$work/"
chmod -R u+w "$work"
cd "$work"

# edit FILE SED-EXPR EXPECTED: applies the expression and fails unless EXPECTED is then present.
edit() {
  sed -i -E "$2" "$1"
  grep -qF -- "$3" "$1" || { echo "vault.sh: patch did not apply to $1" >&2; exit 1; }
}
# (api, sdk and api/auth/{approle,kubernetes,userpass}: all required at their published versions)
edit go.mod '/^replace github\.com\/hashicorp\/vault\/[^ ]+ => \.\//d' 'github.com/hashicorp/vault/api v1.22.0'
if grep -qE '=> \./(api|sdk)' go.mod; then
  echo "vault.sh: go.mod still replaces api/sdk with local directories" >&2
  exit 1
fi
edit vault/identity_store.go \
  's/^(\s*)ActivationFunc: iStore\.activateDeduplication,/\1ActivationFunc: func(ctx context.Context, req *logical.Request, _ string) error { return iStore.activateDeduplication(ctx, req) },/' \
  'return iStore.activateDeduplication(ctx, req) }'
edit vault/logical_system_activation_flags.go \
  's/b\.idStoreBackend\.ActivationFunc\(ctx, nil\)/b.idStoreBackend.ActivationFunc(ctx, nil, "")/' \
  'ActivationFunc(ctx, nil, "")'
edit builtin/logical/transit/path_restore.go \
  's/restoredKeyName, err := b\.lm\.RestorePolicy\(/restoredKeyName, err := keyName, b.lm.RestorePolicy(/' \
  'restoredKeyName, err := keyName, b.lm.RestorePolicy('

# The version comes from version/VERSION (embedded), so `vault version` reports it.
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/vault" .
"$BIN/vault" version
