/**
 * Where a pod's network namespace is, from what the runtime tells NRI: the pinned path of its
 * `network` entry in linux.namespaces (containerd: /var/run/netns/cni-..., or under its state
 * dir), else the sandbox process's /proc/<pid>/ns/net. A pod with neither (a host-network pod
 * whose pid is unknown, or the stop/remove events of containerd 1.7, which carry no namespaces
 * and no pid) has none we could act on. Pure.
 */
import type { NetnsRef } from '../kernel/netns.js';
import type { PodSandbox } from './proto.js';

export function podNetnsRef(pod: Pick<PodSandbox, 'linuxNamespaces' | 'pid'>): NetnsRef | undefined {
  const entry = pod.linuxNamespaces.find((n) => n.type === 'network');
  if (entry !== undefined && entry.path !== '') return { path: entry.path };
  if (pod.pid > 0) return { pid: pod.pid };
  return undefined;
}

/** How logs and error replies name a pod: `namespace/name (id12)`. */
export function podLabel(pod: Pick<PodSandbox, 'id' | 'name' | 'namespace'>): string {
  const id = pod.id.slice(0, 12);
  if (pod.name === '') return id;
  return pod.namespace === '' ? `${pod.name} (${id})` : `${pod.namespace}/${pod.name} (${id})`;
}
