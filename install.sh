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
# The hook's code cache is warmed by shaping and unshaping a throwaway network namespace
# (netqos-warm-<pid>, a veth pair inside it, deleted afterwards); where that fails: a warning.
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
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
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
tmp=$(mktemp)
warm=$(mktemp -d)
trap 'rm -f "$tmp"; rm -rf "$warm"' EXIT
cache=$LIB/netqos-hook-main.cjs.v8cache warm_ns=netqos-warm-$$

# Warm the hook's V8 code cache now, so no container start pays for compiling it. The cache
# holds only the functions compiled by the run that wrote it (packaging/hook-loader.cjs): a run
# that applies nothing leaves out the whole engine (70 KB of cache against 145 KB), so it is
# written by a real container start and stop, on a throwaway namespace:
#   netns netqos-warm-<pid> with a veth pair inside it (both ends: nothing on the node), a
#   `sleep` in it for the state's pid; createRuntime with 10M each way (writes the cache),
#   the sleep killed, poststop removing it all (NETQOS_HOOK_CACHE=refresh: adds its functions).
# Its namespace and its sleep are removed whatever happens (its traps). Prints the reason and
# fails when the hook did not shape and unshape silently.
hook_warm() (
  ns=$warm_ns made='' sleeper='' bundle="$warm/bundle"
  cleanup() {
    if [ -n "$sleeper" ]; then kill "$sleeper" 2>/dev/null; wait "$sleeper" 2>/dev/null; fi
    if [ -n "$made" ]; then ip netns del "$ns" 2>/dev/null; fi
  }
  trap cleanup EXIT
  # interrupted: clean up, then die of the same signal, so install.sh stops too
  for sig in INT TERM HUP; do trap "trap - EXIT $sig; cleanup; kill -$sig \$BASHPID" "$sig"; done
  hook() { # what runs (for the message); stdin: the OCI state. The hook is silent when it did its work.
    local out
    out=$(NETQOS_CONFIG="$warm/config.json" "$NODE" "$LIB/netqos-hook.cjs" 2>&1) && [ -z "$out" ] ||
      { echo "the hook's $1 said: ${out:-nothing, but failed}"; return 1; }
  }
  # a config of its own (the defaults, its log in the scratch directory, not the operator's),
  # validated by a first run that applies nothing, whose cache is dropped: the runs that write
  # the cache find it in the memo, as container starts find the installed config, so the cache
  # holds no config validation (35 KB)
  printf '{"log":{"file":"%s/hook.log"}}\n' "$warm" > "$warm/config.json"
  echo '{"id":"netqos-install","status":"created","pid":1,"bundle":"/nonexistent","annotations":{}}' | hook 'first run' || exit 1
  rm -f "$cache"
  if [ -e "/run/netns/$ns" ]; then echo "/run/netns/$ns exists"; exit 1; fi
  ip netns add "$ns" || exit 1
  made=1
  { ip -n "$ns" link add eth0 type veth peer name eth1 && ip -n "$ns" link set eth0 up && ip -n "$ns" link set eth1 up; } || exit 1
  nsenter --net="/run/netns/$ns" sleep 60 </dev/null >/dev/null 2>&1 &
  sleeper=$!
  want="net:[$(stat -L -c %i "/run/netns/$ns")]"
  for _ in $(seq 100); do
    [ "$(readlink "/proc/$sleeper/ns/net" 2>/dev/null)" = "$want" ] && break
    sleep 0.02
  done
  [ "$(readlink "/proc/$sleeper/ns/net" 2>/dev/null)" = "$want" ] || { echo "sleep did not start in $ns"; exit 1; }
  mkdir -p "$bundle"
  printf '{"linux":{"namespaces":[{"type":"network","path":"/run/netns/%s"}]}}\n' "$ns" > "$bundle/config.json"
  state() { # status, the pid field
    printf '{"ociVersion":"1.0.2","id":"%s","status":"%s",%s"bundle":"%s","annotations":{"kubernetes.io/egress-bandwidth":"10M","kubernetes.io/ingress-bandwidth":"10M"}}' \
      "$ns" "$1" "$2" "$bundle"
  }
  state created "\"pid\":$sleeper," | hook createRuntime || exit 1
  [ -f "$cache" ] || { echo "createRuntime wrote no code cache"; exit 1; }
  kill "$sleeper" && wait "$sleeper" 2>/dev/null
  sleeper=''
  state stopped '' | NETQOS_HOOK_CACHE=refresh hook poststop || exit 1
)
rm -f "$cache" "$LIB/netqos-hook-config.memo.json"
# the hook's memo of the config it last validated (written by the hook itself when it runs)
echo "$LIB/netqos-hook-config.memo.json" >> "$MANIFEST.new"
# the installed hook must run; the cache of this run that applies nothing is kept for a node
# where the warm-up cannot run
echo '{"id":"netqos-install","status":"created","pid":1,"bundle":"/nonexistent","annotations":{}}' |
  NETQOS_CONFIG=/nonexistent "$NODE" "$LIB/netqos-hook.cjs" || die "the installed hook does not run"
[ -f "$cache" ] && mv "$cache" "$warm/fallback.v8cache"
if why=$(hook_warm 2>&1); then
  say "warmed the hook's code cache ($(stat -c %s "$cache") bytes) with a container start and stop in the throwaway namespace $warm_ns"
else
  # no shaping here (no veth in this kernel, say): keep the cache of the run that applied nothing
  say >&2 "warning: could not warm the hook's code cache with a container start and stop in a throwaway namespace ($warm_ns): ${why//$'\n'/; }; every container start compiles the engine's code"
  rm -f "$cache"
  [ -f "$warm/fallback.v8cache" ] && mv "$warm/fallback.v8cache" "$cache"
fi
rm -f "$LIB/netqos-hook-config.memo.json"
[ -f "$cache" ] && echo "$cache" >> "$MANIFEST.new"
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
