/**
 * The only module that enters a network namespace. A target is a container's PID or a netns
 * path (/run/netns/x, /proc/<pid>/ns/net); every command runs as one `nsenter --net=<path>`
 * process, so a whole batch costs one process.
 */
import { statSync } from 'node:fs';
import { NetqosError } from '../domain/errors.js';
import { run, type RunOptions, type RunResult } from './runner.js';
import { toolPath, type Tool } from './tools.js';

export type NetnsRef = { pid: number } | { path: string };

export function netnsPath(ref: NetnsRef): string {
  return 'pid' in ref ? `/proc/${ref.pid}/ns/net` : ref.path;
}

export function describe(ref: NetnsRef): string {
  return 'pid' in ref ? `pid ${ref.pid}` : `netns ${ref.path}`;
}

/** dev:inode of a namespace file: two paths name the same namespace when these are equal */
export function netnsIdentity(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** why a namespace path cannot be read: undefined when it can */
function unreadable(path: string): NodeJS.ErrnoException | undefined {
  try {
    statSync(path);
    return undefined;
  } catch (e) {
    return e as NodeJS.ErrnoException;
  }
}

export function netnsExists(ref: NetnsRef): boolean {
  return netnsIdentity(netnsPath(ref)) !== undefined;
}

/**
 * Refuses the node's own namespace: the one of PID 1 and the one this process runs in (a hook
 * runs in the runtime's namespace, which is the node's for every real runtime). netqos never
 * touches the node's interfaces.
 */
export function assertNotHost(ref: NetnsRef): void {
  const path = netnsPath(ref);
  const target = netnsIdentity(path);
  if (target === undefined) {
    const e = unreadable(path);
    if (e?.code === 'ENOENT' || e?.code === 'ESRCH') {
      throw new NetqosError('NOT_FOUND', `${describe(ref)}: network namespace ${path} does not exist`);
    }
    throw new NetqosError('NOT_FOUND', `${describe(ref)}: cannot read network namespace ${path} (${e?.code ?? 'unknown'}); run as root`);
  }
  for (const host of ['/proc/1/ns/net', '/proc/self/ns/net']) {
    if (netnsIdentity(host) === target) {
      throw new NetqosError(
        'HOST_NETNS',
        `${describe(ref)} shares the node's network namespace (${host}); netqos never shapes the node's own interfaces`,
      );
    }
  }
}

/** Runs ip or tc inside the namespace. */
export function inNetns(ref: NetnsRef, tool: Tool, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
  return run(toolPath('nsenter'), [`--net=${netnsPath(ref)}`, toolPath(tool), ...args], opts);
}
