/** Which links of a namespace get shaped. Pure. */
import { NetqosError } from '../domain/errors.js';
import type { Link, LinkKind } from '../domain/link.js';
import { isOurIfb } from './names.js';

/** The device kinds a container's network comes on; bridges, tunnels and the like are skipped. */
const SHAPEABLE: ReadonlySet<LinkKind> = new Set(['veth', 'macvlan', 'ipvlan', 'vf', 'physical']);

export function selectTargets(links: readonly Link[], wanted?: readonly string[]): Link[] {
  if (wanted === undefined) return links.filter((l) => SHAPEABLE.has(l.kind) && !isOurIfb(l.name));
  return wanted.map((name) => {
    const link = links.find((l) => l.name === name);
    const candidates = links.filter((l) => l.kind !== 'loopback' && l.kind !== 'ifb').map((l) => l.name);
    if (!link) {
      throw new NetqosError(
        'NOT_FOUND',
        `netqos.io/interfaces names ${name}, which the container does not have; its interfaces are: ${candidates.join(', ') || '(none)'}`,
      );
    }
    if (link.kind === 'loopback' || link.kind === 'ifb') {
      throw new NetqosError('INVALID_ANNOTATION', `netqos.io/interfaces names ${name}, a ${link.kind} device, which is never shaped; use one of: ${candidates.join(', ')}`);
    }
    return link;
  });
}
