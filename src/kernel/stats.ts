/** Live counters and configured rates of our HTB trees, for `netqos status`. One tc process. */
import type { Observed } from '../domain/link.js';
import { parseQdiscs, splitBatchJson, type QdiscStats } from '../plan/parse-tc.js';
import { inNetns, type NetnsRef } from './netns.js';

export async function readQdiscStats(ref: NetnsRef, devs: readonly string[]): Promise<Map<string, QdiscStats[]>> {
  const out = new Map<string, QdiscStats[]>();
  if (devs.length === 0) return out;
  const script = devs.map((d) => `qdisc show dev ${d}\n`).join('');
  const res = await inNetns(ref, 'tc', ['-s', '-json', '-batch', '-'], { input: script });
  const arrays = splitBatchJson(res.stdout);
  devs.forEach((d, i) => out.set(d, parseQdiscs(arrays[i] ?? '[]', d)));
  return out;
}

export type { Observed };
