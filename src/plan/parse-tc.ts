/** Parses `tc -json [-s] qdisc|class|filter show` output. Pure. */
import { NetqosError } from '../domain/errors.js';
import type { Filter, Qdisc } from '../domain/link.js';

export interface Counters {
  bytes: number;
  packets: number;
  drops: number;
  overlimits: number;
  backlog: number;
  qlen: number;
}

export interface QdiscStats extends Qdisc, Partial<Counters> {
  options: Record<string, unknown>;
}


function parseArray(text: string, what: string): Record<string, unknown>[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  let v: unknown;
  try {
    v = JSON.parse(trimmed);
  } catch (e) {
    throw new NetqosError('KERNEL', `${what} printed something that is not JSON: ${JSON.stringify(trimmed.slice(0, 80))}`, { cause: e });
  }
  if (!Array.isArray(v)) throw new NetqosError('KERNEL', `${what} did not print a JSON array`);
  return v as Record<string, unknown>[];
}

/** `tc -json -batch` prints one JSON array per command, one per line */
export function splitBatchJson(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}

const num = (v: unknown): number => (typeof v === 'number' ? v : 0);

function counters(r: Record<string, unknown>): Counters | undefined {
  if (typeof r.bytes !== 'number') return undefined;
  return {
    bytes: num(r.bytes),
    packets: num(r.packets),
    drops: num(r.drops),
    overlimits: num(r.overlimits),
    backlog: num(r.backlog),
    qlen: num(r.qlen),
  };
}

/** `dev` is required when the output was for one device (tc omits the dev field then). */
export function parseQdiscs(text: string, dev?: string): QdiscStats[] {
  return parseArray(text, 'tc -json qdisc show').map((r) => ({
    dev: typeof r.dev === 'string' ? r.dev : (dev ?? ''),
    kind: String(r.kind),
    handle: String(r.handle),
    parent: r.root === true ? 'root' : String(r.parent ?? ''),
    options: (r.options as Record<string, unknown>) ?? {},
    ...counters(r),
  }));
}

/**
 * tc prints every u32 key as another "match" member of the same JSON object, which JSON.parse
 * would collapse to the last: number them first ("match#0", "match#1", ...).
 */
function numberMatches(text: string): string {
  let n = 0;
  return text.replace(/"match":\{/g, () => `"match#${n++}":{`);
}

function keysOf(options: Record<string, unknown>): string[] {
  const keys: string[] = [];
  for (const [k, v] of Object.entries(options)) {
    if (!k.startsWith('match#') || typeof v !== 'object' || v === null) continue;
    const m = v as { value?: unknown; mask?: unknown; off?: unknown; offmask?: unknown };
    const pad = (x: unknown): string => String(x ?? '0').padStart(8, '0');
    keys.push(`${pad(m.value)}/${pad(m.mask)}@${num(m.off)}${m.offmask ? `+${String(m.offmask)}` : ''}`);
  }
  return keys;
}

/**
 * `parent`: what the rows' parent is when tc does not print one (it prints none for a clsact
 * hook, nor for `filter show dev X parent 4e51:`).
 */
export function parseFilters(text: string, dev: string, parent?: string): Filter[] {
  const out: Filter[] = [];
  for (const r of parseArray(numberMatches(text), 'tc -json filter show')) {
    const options = r.options as Record<string, unknown> | undefined;
    // u32 prints a header row per priority and one row per hash table; the rule rows carry
    // options.fh with a node id (xxx:yyy:zzz)
    const fh = options?.fh;
    if (typeof fh !== 'string' || !/:.*:/.test(fh)) continue;
    const actions = (options?.actions as Record<string, unknown>[] | undefined) ?? [];
    const mirred = actions.find((a) => a.kind === 'mirred' && a.mirred_action === 'redirect');
    out.push({
      dev,
      parent: String(r.parent ?? parent ?? ''),
      prio: num(r.pref),
      handle: fh,
      kind: String(r.kind),
      ...(mirred && typeof mirred.to_dev === 'string' ? { redirectTo: mirred.to_dev } : {}),
      ...(typeof r.protocol === 'string' ? { protocol: r.protocol } : {}),
      ...(typeof options?.flowid === 'string' ? { flowid: options.flowid } : {}),
      keys: keysOf(options ?? {}),
    });
  }
  return out;
}
