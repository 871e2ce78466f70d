/**
 * Reads a namespace's links and qdiscs (two processes in parallel) and, only when some device
 * has an ingress hook, its ingress filters (one more). A fresh container has no hook, so its
 * setup pays for two reads.
 */
import type { Observed } from '../domain/link.js';
import { parseIpLinks } from '../plan/parse-ip.js';
import { parseFilters, parseQdiscs, splitBatchJson } from '../plan/parse-tc.js';
import { hookOf } from '../plan/ingress-hook.js';
import { inNetns, type NetnsRef } from './netns.js';

export async function discover(ref: NetnsRef, opts: { timeoutMs?: number } = {}): Promise<Observed> {
  const t = { timeoutMs: opts.timeoutMs };
  const [links, qdiscs] = await Promise.all([
    inNetns(ref, 'ip', ['-json', '-details', 'link', 'show'], t),
    inNetns(ref, 'tc', ['-json', 'qdisc', 'show'], t),
  ]);
  const observed: Observed = { links: parseIpLinks(links.stdout), qdiscs: parseQdiscs(qdiscs.stdout) };
  observed.filters = await readFilters(ref, observed, opts.timeoutMs);
  return observed;
}

/** Ingress filters of every device that has an ingress hook, in one `tc -batch`. */
async function readFilters(ref: NetnsRef, o: Observed, timeoutMs?: number): Promise<Observed['filters']> {
  const devs = o.links.map((l) => l.name).filter((d) => hookOf(o, d) !== 'none');
  if (devs.length === 0) return [];
  const script = devs.map((d) => `filter show dev ${d} ingress\n`).join('');
  const out = await inNetns(ref, 'tc', ['-json', '-batch', '-'], { input: script, timeoutMs });
  const arrays = splitBatchJson(out.stdout);
  return devs.flatMap((d, i) => parseFilters(arrays[i] ?? '[]', d));
}
