/**
 * The flags that go with vethShaping "host" (config): `--id` names the container's identity (the
 * node-side ifbs are named from it), `--host-netns` the node's namespace (default PID 1's; a
 * test or a nested node names its own). Without the config they are refused, not ignored.
 */
import type { Config } from '../domain/config.js';
import type { HostSide } from '../engine.js';
import { checkIdentity } from '../plan/host-names.js';
import { invalidFlag, stringFlag, usageError, type CommandSpec, type FlagSpec, type ParsedArgs } from './args.js';
import { containerId, type Target } from './target.js';

export const HOST_FLAGS: Readonly<Record<string, FlagSpec>> = {
  id: { type: 'string' },
  'host-netns': { type: 'string' },
};

export const HOST_USAGE = '[--id ID] [--host-netns PATH]';

export const HOST_HELP = [
  '  --id ID                    with vethShaping "host": the container\'s identity (its id; a pod\'s sandbox id),',
  '                             which names its objects on the node; default: a podman container\'s id',
  '  --host-netns PATH          with vethShaping "host": the node\'s namespace; default /proc/1/ns/net',
];

/** the node's namespace flag alone (gc) */
export function readHostNetns(args: ParsedArgs): { path: string } | undefined {
  const p = stringFlag(args, 'host-netns');
  if (p === undefined) return undefined;
  if (!p.startsWith('/')) throw invalidFlag('host-netns', p, 'not an absolute path', 'use a namespace file such as "/run/netns/node" or "/proc/1/ns/net"');
  return { path: p };
}

/** Pure but for a podman container's id lookup. undefined: shape in the container (the default). */
export async function readHostSide(spec: CommandSpec, args: ParsedArgs, config: Pick<Config, 'vethShaping'>, target?: Target): Promise<HostSide | undefined> {
  const id = stringFlag(args, 'id');
  const netns = readHostNetns(args);
  if (config.vethShaping !== 'host') {
    if (id !== undefined || netns !== undefined) {
      throw usageError(spec, `--${id !== undefined ? 'id' : 'host-netns'} applies only with vethShaping "host" in the config (it is "container")`);
    }
    return undefined;
  }
  let identity = id;
  if (identity !== undefined) checkIdentity(identity, '--id');
  else if (target !== undefined && 'container' in target) identity = await containerId(target.container);
  else throw usageError(spec, 'vethShaping is "host": give the container\'s identity with --id (its container id, or its pod\'s sandbox id), e.g. --id 3f1c2a9b7d10');
  return { identity, ...(netns ? { netns } : {}) };
}
