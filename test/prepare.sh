#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian 12 (run as root), idempotently and quickly
# when everything is already there: Debian packages (checked with dpkg-query first, so apt is
# not touched at all on a prepared machine) and node_modules (npm ci, skipped when
# node_modules already matches package-lock.json).
#
# NQT_FORCE_NPM_CI=1 runs npm ci anyway.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(
  iproute2 iperf3 util-linux
  podman crun runc conmon netavark aardvark-dns catatonit containernetworking-plugins
  iptables busybox-static jq hyperfine ca-certificates
  python3-kubernetes
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "prepare: all ${#PACKAGES[@]} Debian packages present"
else
  if [ "$(id -u)" -ne 0 ]; then
    echo "prepare: missing Debian packages ${missing[*]}, and not root: run as root (sudo bash test/all.sh)" >&2
    exit 1
  fi
  echo "prepare: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi

# Node.js 20.5 or later comes with the machine (Debian 12 ships 18): check, do not install.
if ! command -v node >/dev/null 2>&1; then
  echo "prepare: node not found; netqos needs Node.js >= 20.5" >&2
  exit 1
fi
node -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  if (maj < 20 || (maj === 20 && min < 5)) { console.error(`prepare: Node.js ${process.versions.node}; netqos needs >= 20.5`); process.exit(1); }
'

# node_modules in sync with package-lock.json? npm keeps a copy of the installed tree in
# node_modules/.package-lock.json: every package it lists must match the lock file, and every
# package of the lock file must be installed unless it is optional (other platforms' binaries).
in_sync() {
  [ -f node_modules/.package-lock.json ] || return 1
  node -e '
    const fs = require("fs");
    const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
    const have = JSON.parse(fs.readFileSync("node_modules/.package-lock.json", "utf8"));
    const pkg = JSON.parse(fs.readFileSync("package.json", "utf8"));
    const root = lock.packages[""] || {};
    for (const f of ["dependencies", "devDependencies", "optionalDependencies"]) {
      if (JSON.stringify(root[f] || {}) !== JSON.stringify(pkg[f] || {})) process.exit(1);
    }
    for (const [k, v] of Object.entries(lock.packages)) {
      if (k === "") continue;
      const h = have.packages[k];
      if (!h) { if (v.optional) continue; process.exit(1); }
      for (const f of ["version", "resolved", "integrity"]) if (v[f] !== h[f]) process.exit(1);
      if (!fs.existsSync(k)) process.exit(1);
    }
    for (const k of Object.keys(have.packages)) if (!lock.packages[k]) process.exit(1);
  '
}

if [ "${NQT_FORCE_NPM_CI:-}" != 1 ] && in_sync; then
  echo "prepare: node_modules matches package-lock.json"
else
  echo "prepare: npm ci"
  log=$(mktemp)
  if npm ci --no-audit --no-fund </dev/null 2>&1 | tee "$log"; then
    :
  elif grep -q 'can only install packages when your package.json and package-lock.json' "$log"; then
    # The registry reachable here lacks other platforms' optional binaries (for example
    # @rollup/rollup-darwin-x64 answers 404), so no lock file made here lists them and npm ci
    # refuses it. npm install --no-save installs exactly the lock file's versions without
    # writing package.json or package-lock.json; in_sync checks the result.
    echo "prepare: npm ci refused the lock file (optional packages of other platforms missing); npm install --no-save instead"
    cp package-lock.json "$log.lock"
    rm -rf node_modules
    npm install --no-save --no-audit --no-fund </dev/null
    cmp -s package-lock.json "$log.lock" || { echo "prepare: npm install changed package-lock.json" >&2; exit 1; }
    in_sync || { echo "prepare: node_modules does not match package-lock.json after npm install" >&2; exit 1; }
    rm -f "$log.lock"
  else
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
fi

# --- containerd e2e (issue 4) ---------------------------------------------------------------
# containerd 2.1 (sid) and 1.7 (trixie) plus the CRI proto, unpacked into .cache/containerd with
# a private apt configuration (test/fixtures/containerd/provision.sh; no-op when present).
bash test/fixtures/containerd/provision.sh
# --- end containerd e2e ----------------------------------------------------------------------
