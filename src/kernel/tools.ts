/**
 * Absolute paths of the programs netqos runs. podman runs poststop hooks with an empty
 * environment (no PATH), so nothing may rely on PATH lookup.
 */
import { accessSync, constants } from 'node:fs';
import { NetqosError } from '../domain/errors.js';

export type Tool = 'ip' | 'tc' | 'nsenter' | 'unshare' | 'iperf3' | 'podman';

const DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/local/bin'];
/** where toolPath looks, in order (netqos doctor looks for container runtimes there too) */
export const TOOL_DIRS: readonly string[] = DIRS;
const PACKAGE: Record<Tool, string> = {
  ip: 'iproute2',
  tc: 'iproute2',
  nsenter: 'util-linux',
  unshare: 'util-linux',
  iperf3: 'iperf3',
  podman: 'podman',
};
const found = new Map<Tool, string>();

export function toolPath(tool: Tool): string {
  const cached = found.get(tool);
  if (cached) return cached;
  for (const dir of DIRS) {
    const candidate = `${dir}/${tool}`;
    try {
      accessSync(candidate, constants.X_OK);
      found.set(tool, candidate);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  throw new NetqosError(
    'MISSING_TOOL',
    `${tool} not found in ${DIRS.join(':')}; install the Debian package ${PACKAGE[tool]}`,
  );
}

export function hasTool(tool: Tool): boolean {
  try {
    toolPath(tool);
    return true;
  } catch {
    return false;
  }
}
