/**
 * Reads a namespace's links and qdiscs (the ip and tc sessions answer in parallel) and, only
 * when some device has an ingress hook or our HTB root, the filters there (one more round of
 * questions to tc: the hook's, and our root's, which hold the class and unshaped-subnet rules).
 * A first apply reads the links alone when they show a namespace netqos never shaped
 * (discoverForSetup).
 */
import type { Filter, Link, Observed } from '../domain/link.js';
import { parseIpLinks } from '../plan/parse-ip.js';
import { parseLinkPeers } from '../plan/host-peer.js';
import { parseFilters, parseQdiscs } from '../plan/parse-tc.js';
import { hookOf } from '../plan/ingress-hook.js';
import { hasOurRoot, neverShaped } from '../plan/apply-plan.js';
import { ROOT_HANDLE } from '../plan/names.js';
import type { NetnsTools } from './tools-session.js';

/**
 * onLinks sees the links before tc is asked anything: removal uses it to start deleting ifbs
 * (the slow part of a teardown) at once, and its tc starts only then (openTools, tcOnFirstUse),
 * so Node's spawn of tc does not hold up ip's answer. Without it both are asked at once.
 */
export async function discover(t: NetnsTools, onLinks?: (links: Link[]) => void): Promise<Observed> {
  const ipLinks = t.links().then((text) => ({ text, links: parseIpLinks(text) }));
  let links: { text: string; links: Link[] };
  let qdiscs: string | undefined;
  if (onLinks) {
    links = await ipLinks;
    onLinks(links.links);
    [qdiscs] = await t.tc.ask(['qdisc show']);
  } else {
    [links, [qdiscs]] = await Promise.all([ipLinks, t.tc.ask(['qdisc show'])]);
  }
  return withFilters(t, links.text, links.links, qdiscs ?? '[]');
}

/**
 * Discovery for a setup: when ip's links show a namespace netqos never shaped (no ifb of ours,
 * no HTB root on any device), tc is asked nothing and the result says `fresh`. tc's start-up
 * (about a millisecond after Node's spawn of it) is then off the path: the plan is written to
 * tc before it has started. Anything else on the devices' ingress hooks is found by the plan
 * itself: its `qdisc add ... ingress` fails where a hook exists (applyQos then reads everything).
 */
export async function discoverForSetup(t: NetnsTools): Promise<Observed> {
  const text = await t.links();
  const links = parseIpLinks(text);
  if (neverShaped(links)) return { links, qdiscs: [], filters: [], peers: parseLinkPeers(text), fresh: true };
  const [qdiscs] = await t.tc.ask(['qdisc show']);
  return withFilters(t, text, links, qdiscs ?? '[]');
}

async function withFilters(t: NetnsTools, linkText: string, links: Link[], qdiscs: string): Promise<Observed> {
  const observed: Observed = { links, qdiscs: parseQdiscs(qdiscs), peers: parseLinkPeers(linkText) };
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
