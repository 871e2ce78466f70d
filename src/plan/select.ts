/** Which links of a namespace get shaped. Pure. */
import { NetqosError } from '../domain/errors.js';
import type { Link, LinkKind } from '../domain/link.js';
import { isOurIfb } from './names.js';

/** The device kinds a container's network comes on; bridges, tunnels and the like are skipped. */
const SHAPEABLE: ReadonlySet<LinkKind> = new Set(['veth', 'macvlan', 'ipvlan', 'vf', 'physical']);

/**
 * wanted: netqos.io/interfaces (undefined = every shapeable link). overrides: the interfaces
 * with per-interface limits; each must exist and be shapeable, like a name in wanted, and with
 * wanted given it must be one of them. Throws before anything is planned.
 */
export function selectTargets(links: readonly Link[], wanted?: readonly string[], overrides: readonly string[] = []): Link[] {
  if (wanted === undefined) {
    for (const name of overrides) named(links, name, `the per-interface limit netqos.io/${name}.*`);
    return links.filter((l) => (SHAPEABLE.has(l.kind) && !isOurIfb(l.name)) || overrides.includes(l.name));
  }
  const unlisted = overrides.find((name) => !wanted.includes(name));
  if (unlisted !== undefined) {
    throw new NetqosError(
      'INVALID_ANNOTATION',
      `the per-interface limit netqos.io/${unlisted}.* names ${unlisted}, which netqos.io/interfaces (${wanted.join(',')}) does not list; add it there or drop the limit`,
    );
  }
  return wanted.map((name) => named(links, name, 'netqos.io/interfaces'));
}

/** The link called name, which the user named in `source`; NOT_FOUND listing the candidates. */
function named(links: readonly Link[], name: string, source: string): Link {
  const link = links.find((l) => l.name === name);
  const candidates = links.filter((l) => l.kind !== 'loopback' && l.kind !== 'ifb').map((l) => l.name);
  if (!link) {
    throw new NetqosError(
      'NOT_FOUND',
      `${source} names ${name}, which the container does not have; its interfaces are: ${candidates.join(', ') || '(none)'}`,
    );
  }
  if (link.kind === 'loopback' || link.kind === 'ifb') {
    throw new NetqosError('INVALID_ANNOTATION', `${source} names ${name}, a ${link.kind} device, which is never shaped; use one of: ${candidates.join(', ')}`);
  }
  return link;
}
