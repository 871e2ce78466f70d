/**
 * Reads a namespace's links and qdiscs (the ip and tc sessions answer in parallel) and, only
 * when some device has an ingress hook, its ingress filters (one more question to tc).
 */
import type { Observed } from '../domain/link.js';
import { parseIpLinks } from '../plan/parse-ip.js';
import { parseLinkPeers } from '../plan/host-peer.js';
import { parseFilters, parseQdiscs } from '../plan/parse-tc.js';
import { hookOf } from '../plan/ingress-hook.js';
import type { NetnsTools } from './tools-session.js';

export async function discover(t: NetnsTools): Promise<Observed> {
  const [[links], [qdiscs]] = await Promise.all([t.ip.ask(['link show']), t.tc.ask(['qdisc show'])]);
  const observed: Observed = { links: parseIpLinks(links ?? '[]'), qdiscs: parseQdiscs(qdiscs ?? '[]'), peers: parseLinkPeers(links ?? '[]') };
  const devs = observed.links.map((l) => l.name).filter((d) => hookOf(observed, d) !== 'none');
  const filters = await t.tc.ask(devs.map((d) => `filter show dev ${d} ingress`));
  observed.filters = devs.flatMap((d, i) => parseFilters(filters[i] ?? '[]', d));
  return observed;
}
