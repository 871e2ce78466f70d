/**
 * What the kernel offers, found by trying it in a throw-away namespace (`unshare -n`: it ends
 * with the process, nothing is left behind). The result is cached per boot in /run/netqos so
 * a container start pays nothing for it.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Capabilities } from '../domain/link.js';
import { run } from './runner.js';
import { toolPath } from './tools.js';

export interface ProbeReport extends Capabilities {
  bootId: string;
  features: Record<string, boolean>;
}

/** one line per feature; `tc -force -batch` reports each failing line as "Command failed -:N" */
const TC_FEATURES: [string, string][] = [
  ['htb', 'qdisc add dev lo root handle 1: htb default 1\nclass add dev lo parent 1: classid 1:1 htb rate 1mbit\nclass add dev lo parent 1: classid 1:2 htb rate 1mbit'],
  ['bfifo', 'qdisc add dev lo parent 1:1 handle 2: bfifo limit 10000'],
  ['ingress', 'qdisc add dev lo handle ffff: ingress'],
  ['u32', 'filter add dev lo parent ffff: protocol all prio 1 u32 match u32 0 0'],
  ['mirred', 'filter add dev lo parent ffff: protocol all prio 2 u32 match u32 0 0 action mirred egress redirect dev lo'],
  ['tbf', 'qdisc add dev lo parent 1:2 handle 3: tbf rate 1mbit burst 10k latency 5ms'],
  ['pfifo', 'qdisc replace dev lo parent 1:2 handle 4: pfifo limit 10'],
  ['fq_codel', 'qdisc replace dev lo parent 1:2 handle 5: fq_codel'],
  ['clsact', 'qdisc del dev lo ingress\nqdisc add dev lo clsact'],
];

export const CACHE_FILE = '/run/netqos/caps.json';
/** The features the policy cannot do without on any kernel. */
export const REQUIRED = ['htb', 'bfifo', 'ingress', 'u32', 'mirred', 'ifb'];

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

export async function probe(): Promise<ProbeReport> {
  const unshare = toolPath('unshare');
  const lines: string[] = [];
  const lineOf: Record<string, number[]> = {};
  for (const [name, cmd] of TC_FEATURES) {
    lineOf[name] = cmd.split('\n').map((c) => (lines.push(c), lines.length));
  }
  const [tc, ifb] = await Promise.all([
    run(unshare, ['-n', toolPath('tc'), '-force', '-batch', '-'], { input: lines.join('\n') + '\n', allowFail: true }),
    run(unshare, ['-n', toolPath('ip'), 'link', 'add', 'nqprobe', 'type', 'ifb'], { allowFail: true }),
  ]);
  const failed = new Set([...tc.stderr.matchAll(/Command failed -:(\d+)/g)].map((m) => Number(m[1])));
  const features: Record<string, boolean> = { ifb: ifb.code === 0 };
  for (const [name] of TC_FEATURES) features[name] = !(lineOf[name] ?? []).some((n) => failed.has(n));
  return { bootId: bootId(), features, fqCodel: features.fq_codel === true, clsact: features.clsact === true };
}

/** Cached capabilities; probes (and caches) when the cache is missing or from another boot. */
export async function capabilities(): Promise<Capabilities> {
  try {
    const cached = JSON.parse(readFileSync(CACHE_FILE, 'utf8')) as ProbeReport;
    if (cached.bootId === bootId()) return { fqCodel: cached.fqCodel, clsact: cached.clsact };
  } catch {
    // no cache yet
  }
  const report = await probe();
  try {
    mkdirSync('/run/netqos', { recursive: true });
    writeFileSync(CACHE_FILE, JSON.stringify(report));
  } catch {
    // a read-only /run only costs the next caller another probe
  }
  return { fqCodel: report.fqCodel, clsact: report.clsact };
}
