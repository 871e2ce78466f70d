#!/usr/bin/env bash
# netqos installer for Debian/Ubuntu hosts.
#
#   sudo bash install.sh              install (idempotent), then `netqos doctor` and `netqos demo`
#   sudo bash install.sh --no-demo    install and run doctor only
#   sudo bash install.sh --nri        also install the NRI plugin even where no containerd/CRI-O is found
#   sudo bash install.sh --nri-daemon the NRI plugin as a systemd service (external daemon) instead
#   sudo bash install.sh --no-nri     no NRI plugin even where containerd/CRI-O is found
#   sudo bash install.sh --uninstall  remove everything this script installed
#
# Installs: the CLI (/usr/local/bin/netqos), the OCI hook, CLI and NRI bundles (/usr/local/lib/netqos),
# the hooks.d entry (/usr/share/containers/oci/hooks.d/50-netqos.json, read by podman and CRI-O),
# a default config (/etc/netqos/config.json, never overwritten) and the log directory. Where
# containerd or CRI-O is found (or with --nri): the pre-installed NRI plugin
# /opt/nri/plugins/10-netqos, which the runtime starts itself; with --nri-daemon instead the
# systemd unit netqos-nri.service. Only one of the two may run on a node.
# Every file it writes is listed in /usr/local/lib/netqos/MANIFEST, which --uninstall follows.
# NETQOS_ROOT=/some/dir installs below that directory instead of / (used by the tests).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

ROOT=${NETQOS_ROOT:-}
LIB=$ROOT/usr/local/lib/netqos
BIN=$ROOT/usr/local/bin/netqos
HOOKS_D=$ROOT/usr/share/containers/oci/hooks.d
HOOK_JSON=$HOOKS_D/50-netqos.json
CONF_DIR=$ROOT/etc/netqos
CONF=$CONF_DIR/config.json
LOG_DIR=$ROOT/var/log/netqos
MANIFEST=$LIB/MANIFEST
NRI_PLUGIN=$ROOT/opt/nri/plugins/10-netqos
UNIT=$ROOT/etc/systemd/system/netqos-nri.service
DEFAULT_CONF='{
  "onError": "fail",
  "log": { "file": "/var/log/netqos/netqos.log", "level": "info" },
  "queueLatency": "5ms"
}'

say() { printf 'netqos install: %s\n' "$*"; }
die() { printf 'netqos install: %s\n' "$*" >&2; exit 1; }

mode=install demo=1 nri=auto
set_nri() { [ "$nri" = auto ] || [ "$nri" = "$1" ] || die "--nri, --nri-daemon and --no-nri exclude each other"; nri=$1; }
for arg in "$@"; do
  case "$arg" in
    --uninstall) mode=uninstall ;;
    --no-demo) demo=0 ;;
    --nri) set_nri plugin ;;
    --nri-daemon) set_nri daemon ;;
    --no-nri) set_nri none ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) die "unknown option $arg; use --uninstall, --no-demo, --nri, --nri-daemon, --no-nri or --help" ;;
  esac
done
[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and writes to /usr/local and /etc)"

uninstall() {
  if [ ! -f "$MANIFEST" ]; then say "nothing to remove (no $MANIFEST)"; return 0; fi
  if grep -qx "$UNIT" "$MANIFEST" && [ -z "$ROOT" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now netqos-nri.service >/dev/null 2>&1 || true
  fi
  if grep -qx "$NRI_PLUGIN" "$MANIFEST"; then
    say "the runtime keeps a running pre-installed plugin until it restarts: restart containerd/CRI-O to stop netqos-nri"
  fi
  while IFS= read -r f; do
    [ -n "$f" ] || continue
    if [ "$f" = "$CONF" ] && [ "$(cat "$CONF" 2>/dev/null)" != "$DEFAULT_CONF" ]; then
      say "kept $CONF: it was changed after installation"
      continue
    fi
    rm -f "$f" && say "removed $f"
  done < "$MANIFEST"
  rm -f "$MANIFEST"
  rmdir "$LIB" "$CONF_DIR" "$LOG_DIR" 2>/dev/null || true
  rmdir "$ROOT/opt/nri/plugins" "$ROOT/opt/nri" 2>/dev/null || true
  rm -rf "$ROOT/run/netqos"
  say "uninstalled"
}

if [ "$mode" = uninstall ]; then uninstall; exit 0; fi

# 1. packages: ip/tc (iproute2), nsenter/unshare (util-linux), iperf3 for the demo, Node.js >= 18
need=()
for pair in ip:iproute2 tc:iproute2 nsenter:util-linux unshare:util-linux iperf3:iperf3; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
node_ok() { command -v node >/dev/null 2>&1 && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 18 ]; }
node_ok || need+=(nodejs)
[ -d node_modules ] || command -v npm >/dev/null 2>&1 || need+=(npm)
if [ "${#need[@]}" -gt 0 ]; then
  say "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
node_ok || die "Node.js 18 or newer is required (found: $(node --version 2>/dev/null || echo none))"
NODE=$(readlink -f "$(command -v node)")

# 2. build the two bundles
if [ ! -x node_modules/.bin/esbuild ]; then
  say "installing build dependencies (npm ci)"
  # the lock file cannot list other platforms' optional packages (the registry reached here
  # answers 404 for them), so npm ci may refuse it: then install the locked versions as they are
  npm ci --no-audit --no-fund --loglevel=error || npm install --no-save --no-audit --no-fund --loglevel=error
fi
node packaging/build.mjs

# 3. install files, recording each in the manifest
mkdir -p "$LIB" "$(dirname "$BIN")" "$HOOKS_D" "$CONF_DIR" "$LOG_DIR"
: > "$MANIFEST.new"
put() { # src dest mode
  install -m "$3" "$1" "$2"
  echo "$2" >> "$MANIFEST.new"
}
put dist/netqos.cjs "$LIB/netqos.cjs" 0644
put dist/netqos-hook.cjs "$LIB/netqos-hook.cjs" 0644
put dist/netqos-hook-main.cjs "$LIB/netqos-hook-main.cjs" 0644
put dist/netqos-nri.cjs "$LIB/netqos-nri.cjs" 0644
# warm the hook's V8 code cache now, so no container start pays for compiling it
rm -f "$LIB/netqos-hook-main.cjs.v8cache" "$LIB/netqos-hook-config.memo.json"
# the hook's memo of the config it last validated (written by the hook itself when it runs)
echo "$LIB/netqos-hook-config.memo.json" >> "$MANIFEST.new"
echo '{"id":"netqos-install","status":"created","pid":1,"bundle":"/nonexistent","annotations":{}}' |
  NETQOS_CONFIG=/nonexistent "$NODE" "$LIB/netqos-hook.cjs" || die "the installed hook does not run"
[ -f "$LIB/netqos-hook-main.cjs.v8cache" ] && echo "$LIB/netqos-hook-main.cjs.v8cache" >> "$MANIFEST.new"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
printf '#!/bin/sh\nexec %s %s "$@"\n' "$NODE" "/usr/local/lib/netqos/netqos.cjs" > "$tmp"
put "$tmp" "$BIN" 0755
# the hooks.d entry: this node, this hook (podman runs poststop with an empty environment)
node -e '
  const fs = require("fs");
  const h = JSON.parse(fs.readFileSync("hooks/50-netqos.json", "utf8"));
  h.hook.path = process.argv[1];
  h.hook.args = ["node", "/usr/local/lib/netqos/netqos-hook.cjs"];
  fs.writeFileSync(process.argv[2], JSON.stringify(h, null, 2) + "\n");
' "$NODE" "$tmp"
put "$tmp" "$HOOK_JSON" 0644
if [ -f "$CONF" ]; then
  say "kept existing $CONF"
  grep -qx "$CONF" "$MANIFEST" 2>/dev/null && echo "$CONF" >> "$MANIFEST.new"
else
  printf '%s\n' "$DEFAULT_CONF" > "$CONF"
  echo "$CONF" >> "$MANIFEST.new"
fi
# the NRI plugin: pre-installed (the runtime launches it from its plugin directory, with the
# connection on fd 3 and no PATH, so the wrapper names node absolutely) or a systemd daemon
if [ "$nri" = auto ]; then
  if command -v containerd >/dev/null 2>&1 || command -v crio >/dev/null 2>&1; then nri=plugin; else nri=none; fi
fi
nri_where=""
case "$nri" in
  plugin)
    mkdir -p "$(dirname "$NRI_PLUGIN")"
    printf '#!/bin/sh\n# netqos NRI plugin, launched by containerd / CRI-O (installed by netqos install.sh)\nexec %s %s "$@"\n' \
      "$NODE" "/usr/local/lib/netqos/netqos-nri.cjs" > "$tmp"
    put "$tmp" "$NRI_PLUGIN" 0755
    nri_where=", $NRI_PLUGIN" ;;
  daemon)
    mkdir -p "$(dirname "$UNIT")"
    sed "s|^ExecStart=/usr/bin/node |ExecStart=$NODE |" packaging/systemd/netqos-nri.service > "$tmp"
    put "$tmp" "$UNIT" 0644
    nri_where=", $UNIT" ;;
esac
# a mode switch leaves no file of the other mode behind
for f in "$NRI_PLUGIN" "$UNIT"; do
  if grep -qx "$f" "$MANIFEST" 2>/dev/null && ! grep -qx "$f" "$MANIFEST.new"; then rm -f "$f" && say "removed $f"; fi
done
mv "$MANIFEST.new" "$MANIFEST"
say "installed: $BIN, $LIB, $HOOK_JSON, $CONF$nri_where"

# what the runtime needs for NRI (nothing is changed in its config: printed for the operator)
nri_advice() {
  if command -v containerd >/dev/null 2>&1; then
    local ver major conf=/etc/containerd/config.toml state
    ver=$(containerd --version 2>/dev/null | awk '{print $3}')
    state=$(awk '/^\[plugins\.["'"'"']io\.containerd\.nri\.v1\.nri["'"'"']\]/ {in_nri=1; next} /^\[/ {in_nri=0} in_nri && /^[[:space:]]*disable[[:space:]]*=/ {gsub(/[[:space:]]/, ""); print; exit}' "$conf" 2>/dev/null || true)
    major=${ver#v}
    major=${major%%.*}
    # containerd 1.x ships NRI off, 2.x on; the config's own setting wins
    if [ "$state" = "disable=true" ] || { [ "$major" = 1 ] && [ "$state" != "disable=false" ]; }; then
      say "containerd $ver has NRI disabled: add to $conf, then restart containerd:"
      printf '    [plugins."io.containerd.nri.v1.nri"]\n      disable = false\n'
    else
      say "containerd $ver: NRI is enabled; restart containerd to start the plugin"
    fi
  fi
  if command -v crio >/dev/null 2>&1; then
    say "CRI-O: NRI needs enable_nri = true in the [crio.nri] table of /etc/crio/crio.conf (or a drop-in in /etc/crio/crio.conf.d); restart crio to start the plugin"
  fi
}
case "$nri" in
  plugin) [ -n "$ROOT" ] || nri_advice ;;
  daemon)
    if [ -z "$ROOT" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
      systemctl daemon-reload && systemctl enable --now netqos-nri.service && say "started netqos-nri.service"
    else
      say "no running systemd: start the daemon with /usr/bin/node /usr/local/lib/netqos/netqos-nri.cjs --socket /var/run/nri/nri.sock"
    fi ;;
esac

# 4. show it working
[ -n "$ROOT" ] && { say "NETQOS_ROOT set: skipping doctor and demo"; exit 0; }
netqos doctor
if [ "$demo" = 1 ]; then netqos demo; fi
