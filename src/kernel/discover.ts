/**
 * Reads a namespace's links and qdiscs (the ip and tc sessions answer in parallel) and, only
 * when some device has an ingress hook or our HTB root, the filters there (one more round of
 * questions to tc: the hook's, and our root's, which hold the class and unshaped-subnet rules).
 */
import type { Filter, Link, Observed } from '../domain/link.js';
import { parseIpLinks } from '../plan/parse-ip.js';
import { parseLinkPeers } from '../plan/host-peer.js';
import { parseFilters, parseQdiscs } from '../plan/parse-tc.js';
import { hookOf } from '../plan/ingress-hook.js';
import { hasOurRoot } from '../plan/apply-plan.js';
import { ROOT_HANDLE } from '../plan/names.js';
import type { NetnsTools } from './tools-session.js';

/**
 * onLinks sees the links before tc is asked anything: removal uses it to start deleting ifbs
 * (the slow part of a teardown) at once, and its tc starts only then (openTools, tcOnFirstUse),
 * so Node's spawn of tc does not hold up ip's answer. Without it both are asked at once.
 */
export async function discover(t: NetnsTools, onLinks?: (links: Link[]) => void): Promise<Observed> {
  let linkText = '[]';
  const ipLinks = t.ip.ask(['link show']).then(([text]) => {
    linkText = text ?? '[]';
    return parseIpLinks(linkText);
  });
  let links: Link[];
  let qdiscs: string | undefined;
  if (onLinks) {
    links = await ipLinks;
    onLinks(links);
    [qdiscs] = await t.tc.ask(['qdisc show']);
  } else {
    [links, [qdiscs]] = await Promise.all([ipLinks, t.tc.ask(['qdisc show'])]);
  }
  const observed: Observed = { links, qdiscs: parseQdiscs(qdiscs ?? '[]'), peers: parseLinkPeers(linkText) };
  observed.filters = await readFilters(t, observed, observed.links.map((l) => l.name));
  return observed;
}

/**
 * The filters of these devices that planning needs, in one round of questions to tc: the
 * ingress hook's (where one exists) and our HTB root's (class, unshaped-subnet and small-packet
 * rules: without them a re-apply would add them again beside the ones there).
 */
export async function readFilters(t: NetnsTools, observed: Observed, names: readonly string[]): Promise<Filter[]> {
  const questions: [string, string, string | undefined][] = [
    ...names.filter((d) => hookOf(observed, d) !== 'none').map((d): [string, string, undefined] => [d, `filter show dev ${d} ingress`, undefined]),
    ...names.filter((d) => hasOurRoot(observed, d)).map((d): [string, string, string] => [d, `filter show dev ${d} parent ${ROOT_HANDLE}`, ROOT_HANDLE]),
  ];
  const filters = await t.tc.ask(questions.map(([, q]) => q));
  return questions.flatMap(([d, , parent], i) => parseFilters(filters[i] ?? '[]', d, parent));
}
