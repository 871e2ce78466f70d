/**
 * Reads a namespace's links and qdiscs (the ip and tc sessions answer in parallel) and, only
 * when some device has an ingress hook, its ingress filters (one more question to tc).
 */
import type { Link, Observed } from '../domain/link.js';
import { parseIpLinks } from '../plan/parse-ip.js';
import { parseFilters, parseQdiscs } from '../plan/parse-tc.js';
import { hookOf } from '../plan/ingress-hook.js';
import type { NetnsTools } from './tools-session.js';

/**
 * onLinks sees the links as soon as ip answers, while tc may still be answering: removal uses
 * it to start deleting ifbs (the slow part of a teardown) at once.
 */
export async function discover(t: NetnsTools, onLinks?: (links: Link[]) => void): Promise<Observed> {
  const ipLinks = t.ip.ask(['link show']).then(([text]) => {
    const links = parseIpLinks(text ?? '[]');
    onLinks?.(links);
    return links;
  });
  const [links, [qdiscs]] = await Promise.all([ipLinks, t.tc.ask(['qdisc show'])]);
  const observed: Observed = { links, qdiscs: parseQdiscs(qdiscs ?? '[]') };
  const devs = observed.links.map((l) => l.name).filter((d) => hookOf(observed, d) !== 'none');
  const filters = await t.tc.ask(devs.map((d) => `filter show dev ${d} ingress`));
  observed.filters = devs.flatMap((d, i) => parseFilters(filters[i] ?? '[]', d));
  return observed;
}
