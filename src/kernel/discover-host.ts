/**
 * Reads what host-side shaping needs from the node's namespace, and no more: every link (names,
 * kinds, peers, aliases: one `ip link show`), then the qdiscs, ingress filters and our HTB roots'
 * filters of only the devices that matter (the container's host peers, our nqh ifbs and the
 * veths their aliases name). A node with a thousand veths costs one link dump, not a thousand filter dumps.
 */
import type { Observed } from '../domain/link.js';
import { isHostIfbName, parseHostAlias } from '../plan/host-names.js';
import { parseLinkPeers } from '../plan/host-peer.js';
import { parseIpLinks } from '../plan/parse-ip.js';
import { parseQdiscs } from '../plan/parse-tc.js';
import { readFilters } from './discover.js';
import type { NetnsTools } from './tools-session.js';

/** peerIndexes: the ifindexes (in the node's namespace) the container's veths point to */
export async function discoverHost(t: NetnsTools, peerIndexes: readonly number[] = []): Promise<Observed> {
  const links = await t.links();
  const observed: Observed = { links: parseIpLinks(links), qdiscs: [], filters: [], peers: parseLinkPeers(links) };
  const devs = new Set<string>();
  for (const l of observed.links) if (peerIndexes.includes(l.index)) devs.add(l.name);
  for (const p of observed.peers ?? []) {
    if (!isHostIfbName(p.name)) continue;
    devs.add(p.name);
    const owner = parseHostAlias(p.alias);
    const served = owner && observed.links.find((l) => l.index === owner.peerIndex && l.name === owner.peerName);
    if (served) devs.add(served.name);
  }
  const names = [...devs].sort();
  const qdiscs = await t.tc.ask(names.map((d) => `qdisc show dev ${d}`));
  observed.qdiscs = names.flatMap((d, i) => parseQdiscs(qdiscs[i] ?? '[]', d));
  observed.filters = await readFilters(t, observed, names);
  return observed;
}
