/**
 * Who may remove a pod's shaping. Containers of a pod share one network namespace and the limit
 * is the pod's: an app container's stop never removes it, and a stop removes it only once nobody
 * is left in the namespace. (Applying is idempotent, so any annotated container may apply: under
 * podman 4.3 a pod cannot carry annotations and only its app containers can, measured.)
 */
import { readdirSync, readlinkSync, statSync } from 'node:fs';

/** CRI runtimes mark every container: the sandbox, or an app container of a pod. */
const CONTAINER_TYPE_KEYS = ['io.kubernetes.cri.container-type', 'io.kubernetes.cri-o.ContainerType'];

export function isPodAppContainer(annotations: Record<string, string>): boolean {
  return CONTAINER_TYPE_KEYS.some((k) => annotations[k] === 'container');
}

/** CRI runtimes name every container's pod: its sandbox id (the sandbox's own id on the sandbox). */
const SANDBOX_ID_KEYS = ['io.kubernetes.cri.sandbox-id', 'io.kubernetes.cri-o.SandboxID'];

/**
 * Whose shaping this is, for node-side names (vethShaping "host"): the pod's sandbox id under a
 * CRI runtime, so a pod's containers share one identity and the sandbox's stop removes it; the
 * container's own id otherwise (podman).
 */
export function hookIdentity(state: { id: string; annotations: Record<string, string> }): string {
  for (const k of SANDBOX_ID_KEYS) {
    const v = state.annotations[k];
    if (v !== undefined && /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(v)) return v;
  }
  return state.id;
}

/**
 * true while any process still lives in the namespace (a pod's infra/pause keeps it), other
 * than `ours` (the hook's own ip and tc, already started in it).
 */
export function netnsInUse(netnsPath: string, ours: readonly (number | undefined)[] = []): boolean {
  let link: string;
  try {
    link = `net:[${statSync(netnsPath).ino}]`; // the form /proc/<pid>/ns/net links read as
  } catch {
    return false;
  }
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || ours.includes(Number(pid))) continue;
    try {
      if (readlinkSync(`/proc/${pid}/ns/net`) === link) return true;
    } catch {
      // the process ended while we looked, or is not ours to read
    }
  }
  return false;
}
