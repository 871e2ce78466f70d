#!/usr/bin/env bash
# Lists what tests left behind and exits non-zero if anything is there:
#   - network namespaces named nqt* (ip netns list)
#   - links named nqt* in the root namespace
#   - live processes (zombies aside) inside an nqt* namespace, iperf3 processes whose command
#     line carries our nqt marker (the pid/log file test/support/traffic.ts gives them), and
#     processes recorded in the run's ledger that are still running
#   - what a containerd lab (test/support/containerd.ts) leaves if its teardown fails: its
#     directory /tmp/nqt-ctrd-*, cgroups named nqt-ctrd-*, mounts below such a directory, and
#     processes (containerd, shims, pause) whose command line names one
#
# Usage:
#   test/leftovers.sh                                  strict: everything named nqt* counts
#   test/leftovers.sh --snapshot FILE                  write what exists now (a baseline), exit 0
#   test/leftovers.sh --baseline FILE [--ledger FILE]  what a run left (test/all.sh, outside CI)
#
# With --baseline (and CI not true), items that existed before the run are ignored, and items
# that appeared during the run but are not in its ledger (NQT_LEDGER, written by
# test/support/fixtures.ts) are reported as warnings only: on a shared machine they are most
# likely another engineer's run in progress. NQT_STRICT_LEFTOVERS=1 makes them count. In CI
# (CI=true) the machine is ours alone: every nqt* item counts, whatever the options.
set -uo pipefail

mode=check
baseline=
ledger=
while [ $# -gt 0 ]; do
  case "$1" in
    --snapshot) mode=snapshot; out=${2:?--snapshot FILE}; shift 2 ;;
    --baseline) baseline=${2:?--baseline FILE}; shift 2 ;;
    --ledger) ledger=${2:?--ledger FILE}; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "leftovers.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

IP=$(command -v ip || echo /usr/sbin/ip)

# one item per line: "netns NAME", "link NAME", "proc PID COMM (in NETNS)"
current_items() {
  local ns name pid comm state inode target
  declare -A ns_by_inode=()
  while read -r ns _; do
    [ -n "$ns" ] || continue
    case "$ns" in nqt*) ;; *) continue ;; esac
    echo "netns $ns"
    inode=$(stat -L -c %i "/run/netns/$ns" 2>/dev/null) && ns_by_inode[$inode]=$ns
  done < <("$IP" netns list 2>/dev/null)

  while IFS= read -r name; do
    name=${name%%@*}
    case "$name" in nqt*) echo "link $name" ;; esac
  done < <("$IP" -o link show 2>/dev/null | awk -F': ' '{print $2}')

  local self_inode
  self_inode=$(readlink /proc/self/ns/net 2>/dev/null)
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    state=$(awk '{ s = $0; sub(/.*\) /, "", s); print substr(s, 1, 1) }' "$d/stat" 2>/dev/null) || continue
    case "$state" in Z|X|'') continue ;; esac
    comm=$(cat "$d/comm" 2>/dev/null) || continue
    target=$(readlink "$d/ns/net" 2>/dev/null) || continue
    inode=${target#net:[}
    inode=${inode%]}
    if [ -n "${ns_by_inode[$inode]:-}" ]; then
      echo "proc $pid $comm (in ${ns_by_inode[$inode]})"
    elif [ "$comm" = iperf3 ] && tr '\0' ' ' < "$d/cmdline" 2>/dev/null | grep -q 'nqt-'; then
      echo "proc $pid $comm (nqt marker; netns $target$([ "$target" = "$self_inode" ] && echo ', the root one'))"
    elif lab=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null | grep -o 'nqt-ctrd-[0-9a-f]*' | head -n1) && [ -n "$lab" ]; then
      echo "proc $pid $comm (names the containerd lab $lab)"
    fi
  done

  local p
  for p in /tmp/nqt-ctrd-* /sys/fs/cgroup/nqt-ctrd-* /sys/fs/cgroup/*/nqt-ctrd-*; do
    [ -e "$p" ] || continue
    case "$p" in /tmp/*) echo "dir $p" ;; *) echo "cgroup $p" ;; esac
  done
  awk '$5 ~ /nqt-ctrd-/ {print "mount " $5}' /proc/self/mountinfo 2>/dev/null
}

# processes the ledger recorded ("pid PID COMM") that still run that program
ledger_procs() {
  [ -n "$ledger" ] && [ -f "$ledger" ] || return 0
  local kind pid comm state
  while read -r kind pid comm; do
    [ "$kind" = pid ] || continue
    [ -r "/proc/$pid/stat" ] || continue
    state=$(awk '{ s = $0; sub(/.*\) /, "", s); print substr(s, 1, 1) }' "/proc/$pid/stat" 2>/dev/null)
    case "$state" in Z|X|'') continue ;; esac
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] && echo "proc $pid $comm (recorded in the ledger)"
  done < "$ledger"
}

if [ "$mode" = snapshot ]; then
  current_items > "$out"
  exit 0
fi

strict=0
case "${CI:-}" in true|1) strict=1 ;; esac
[ -z "$baseline" ] && strict=1
[ "${NQT_STRICT_LEFTOVERS:-}" = 1 ] && strict=1

items=$( { current_items; ledger_procs; } | sort -u -k1,2)
leftover=()
warned=()
while IFS= read -r item; do
  [ -n "$item" ] || continue
  key=$(echo "$item" | awk '{print $1, $2}')
  if [ "$strict" = 1 ]; then
    leftover+=("$item")
    continue
  fi
  if [ -f "$baseline" ] && awk '{print $1, $2}' "$baseline" | grep -qxF "$key"; then
    continue # existed before this run
  fi
  ours=0
  if [ -n "$ledger" ] && [ -f "$ledger" ]; then
    case "$item" in
      netns*|link*) grep -qxF "$key" "$ledger" && ours=1 ;;
      dir*|cgroup*|mount*|*"names the containerd lab"*)
        lab=$(echo "$item" | grep -o 'nqt-ctrd-[0-9a-f]*' | head -n1)
        [ -n "$lab" ] && grep -qxF "netns $lab" "$ledger" && ours=1
        ;;
      proc*)
        pid=$(echo "$item" | awk '{print $2}')
        grep -q "^pid $pid " "$ledger" && ours=1
        for ns in $(awk '$1 == "netns" {print $2}' "$ledger"); do
          case "$item" in *"(in $ns)"*) ours=1 ;; esac
        done
        ;;
    esac
  fi
  if [ "$ours" = 1 ]; then leftover+=("$item"); else warned+=("$item"); fi
done <<< "$items"

for w in "${warned[@]}"; do
  echo "leftovers: warning: $w appeared during this run but is not in its ledger (another run's, or a test that bypassed test/support/fixtures)"
done
if [ "${#leftover[@]}" -gt 0 ]; then
  echo "leftovers: ${#leftover[@]} item(s) left behind:"
  printf '  %s\n' "${leftover[@]}"
  exit 1
fi
echo "leftovers: none"
exit 0
