/**
 * netqos.io/egress-classes and netqos.io/ingress-classes: child classes under the direction's
 * total (its bandwidth annotation), as a JSON array, and netqos.io/unshaped-subnets, a comma
 * list of prefixes. Read in two steps: the shape of the JSON (zod) when the annotations are
 * read, then the rates against the total once it is known. Every rejection names the class and
 * the field. Pure.
 *
 *   [{"name":"db","rate":"40M","ceil":"50M","priority":0,
 *     "match":{"cidr":["10.1.0.0/16","fd00:1::/64"],"protocol":"tcp","port":5432}}]
 */
import { array, enum as zEnum, int, number, optional, strictObject, string, union } from 'zod/mini';
import type { output } from 'zod/mini';
import type { Checked } from './annotations.js';
import { readBits } from './annotations.js';
import { readCidr, type Cidr } from './cidr.js';
import { formatBits } from './quantity.js';
import type { ClassMatch, TrafficClass } from './spec.js';

/** HTB serves priorities 0 (first) to 7 */
export const MAX_PRIORITY = 7;
/** a class without a priority, and the default class, are served after every explicit one */
export const DEFAULT_PRIORITY = MAX_PRIORITY;
/** at most this many classes per direction (each costs a class, a leaf and two filters) */
export const MAX_CLASSES = 16;
/** the name of the class unmatched traffic goes to: reserved */
export const DEFAULT_CLASS_NAME = 'default';
const NAME = /^[a-z0-9](?:[a-z0-9-]{0,14}[a-z0-9])?$/;
const PROTOCOLS = ['tcp', 'udp', 'sctp', 'icmp', 'icmpv6'] as const;
const PORT_PROTOCOLS: ReadonlySet<string> = new Set(['tcp', 'udp', 'sctp']);

const buildClassSchema = () =>
  strictObject({
  name: string(),
  rate: string(),
  ceil: optional(string()),
  priority: optional(number().check(int())),
  match: strictObject({
    cidr: union([string(), array(string())]),
    protocol: optional(zEnum(PROTOCOLS)),
    port: optional(number().check(int())),
  }),
  });
export type RawClass = output<ReturnType<typeof buildClassSchema>>;
// built on first use: the OCI hook pays for every millisecond of module load
let classSchema: ReturnType<typeof buildClassSchema> | undefined;

export const CLASSES_EXAMPLE =
  'use a JSON array such as [{"name":"db","rate":"40M","ceil":"50M","priority":0,"match":{"cidr":["10.1.0.0/16"],"protocol":"tcp","port":5432}}]';
export const SUBNETS_EXAMPLE = 'use prefixes separated by commas such as "10.0.0.0/8" or "192.168.0.0/16,fd00::/8"';

const bad = (reason: string): Checked<never> => ({ ok: false, reason });

/** Step one: the JSON and the shape of every class (no rates compared yet). */
export function readClassList(text: string): Checked<RawClass[]> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return bad(`not JSON (${(e as Error).message.split('\n', 1)[0]})`);
  }
  if (!Array.isArray(v)) return bad('not a JSON array of classes');
  if (v.length === 0) return bad('an empty list; leave the annotation out for no classes');
  if (v.length > MAX_CLASSES) return bad(`${v.length} classes, more than the ${MAX_CLASSES} allowed`);
  const out: RawClass[] = [];
  for (const [i, entry] of v.entries()) {
    const r = (classSchema ??= buildClassSchema()).safeParse(entry);
    if (!r.success) return bad(`${which(i, entry)}: ${describeIssue(r.error.issues[0], entry)}`);
    out.push(r.data);
  }
  return { ok: true, value: out };
}

/** "class 2 (\"db\")": position from 1, and the name when there is one */
function which(i: number, entry: unknown): string {
  const name = (entry as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? `class ${i + 1} (${JSON.stringify(name)})` : `class ${i + 1}`;
}

interface Issue {
  code: string;
  path: PropertyKey[];
  expected?: string;
  keys?: string[];
  values?: unknown[];
}

/** the value at an issue's path in the entry (zod does not report it) */
function valueAt(entry: unknown, path: readonly PropertyKey[]): unknown {
  let v = entry;
  for (const k of path) v = typeof v === 'object' && v !== null ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

function describeIssue(issue: Issue | undefined, entry: unknown): string {
  if (!issue) return 'invalid';
  if (issue.code === 'unrecognized_keys') {
    const where = issue.path.length ? `${issue.path.join('.')} has ` : '';
    return `${where}unknown field ${JSON.stringify(issue.keys?.[0])}; the fields are name, rate, ceil, priority, match{cidr, protocol, port}`;
  }
  const field = issue.path.filter((p) => typeof p === 'string').join('.') || 'the class';
  if (issue.code === 'invalid_value') return `${field} must be one of ${(issue.values ?? []).map((x) => JSON.stringify(x)).join(', ')}`;
  const got = valueAt(entry, issue.path);
  if (got === undefined && issue.path.length > 0) return `${field} is missing`;
  if (typeof got === 'number' && !Number.isInteger(got)) return `${field} must be a whole number`;
  if (issue.code === 'invalid_type' || issue.code === 'invalid_union') {
    const want: Record<string, string> = {
      'match.cidr': 'a prefix string or an array of them',
      match: 'an object',
      priority: 'a number',
      'match.port': 'a number',
      name: 'a string',
      rate: 'a quantity string such as "40M"',
      ceil: 'a quantity string such as "50M"',
    };
    return `${field} must be ${want[field] ?? issue.expected ?? 'something else'}`;
  }
  return `${field} is invalid`;
}

/**
 * Step two: the classes against the direction's total. `keyOfTotal` names the bandwidth
 * annotation in the messages.
 */
export function checkClasses(raw: readonly RawClass[], totalBps: number, keyOfTotal: string): Checked<TrafficClass[]> {
  const total = `${formatBits(totalBps)} of ${keyOfTotal}`;
  const names = new Set<string>();
  const out: TrafficClass[] = [];
  let sum = 0;
  for (const [i, c] of raw.entries()) {
    const at = which(i, c);
    if (!NAME.test(c.name)) {
      return bad(`${at}: name must be 1 to 16 lowercase letters, digits or "-" (not first or last), such as "db"`);
    }
    if (c.name === DEFAULT_CLASS_NAME) return bad(`${at}: the name "default" is reserved for unmatched traffic`);
    if (names.has(c.name)) return bad(`${at}: the name is used twice`);
    names.add(c.name);
    const rate = readBits(c.rate, 'bit/s');
    if (!rate.ok) return bad(`${at}: rate ${JSON.stringify(c.rate)} is ${rate.reason}`);
    if (rate.value > totalBps) return bad(`${at}: rate ${c.rate} is above the total ${total}`);
    const tc: TrafficClass = { name: c.name, rateBps: rate.value, match: { cidrs: [] } };
    if (c.ceil !== undefined) {
      const ceil = readBits(c.ceil, 'bit/s');
      if (!ceil.ok) return bad(`${at}: ceil ${JSON.stringify(c.ceil)} is ${ceil.reason}`);
      if (ceil.value < rate.value) return bad(`${at}: ceil ${c.ceil} is below its rate ${c.rate}`);
      if (ceil.value > totalBps) return bad(`${at}: ceil ${c.ceil} is above the total ${total}`);
      tc.ceilBps = ceil.value;
    }
    if (c.priority !== undefined) {
      if (c.priority < 0 || c.priority > MAX_PRIORITY) return bad(`${at}: priority ${c.priority} is outside 0 (first) to ${MAX_PRIORITY}`);
      tc.priority = c.priority;
    }
    const match = checkMatch(c.match);
    if (!match.ok) return bad(`${at}: ${match.reason}`);
    tc.match = match.value;
    sum += rate.value;
    out.push(tc);
  }
  if (sum > totalBps) return bad(`the class rates add up to ${formatBits(sum)}, more than the total ${total}`);
  return { ok: true, value: out };
}

function checkMatch(m: RawClass['match']): Checked<ClassMatch> {
  const texts = typeof m.cidr === 'string' ? [m.cidr] : m.cidr;
  if (texts.length === 0) return bad('match.cidr names no prefix');
  const cidrs: Cidr[] = [];
  for (const t of texts) {
    const r = readCidr(t);
    if (!r.ok) return bad(`match.cidr: ${r.reason}`);
    if (cidrs.some((c) => c.text === r.value.text)) return bad(`match.cidr: ${JSON.stringify(t)} is listed twice`);
    cidrs.push(r.value);
  }
  const match: ClassMatch = { cidrs: cidrs.map((c) => c.text) };
  if (m.protocol !== undefined) {
    if (m.protocol === 'icmp' && cidrs.some((c) => c.family === 6)) return bad('match.protocol "icmp" is IPv4 only; use "icmpv6" for IPv6 prefixes');
    if (m.protocol === 'icmpv6' && cidrs.some((c) => c.family === 4)) return bad('match.protocol "icmpv6" is IPv6 only; use "icmp" for IPv4 prefixes');
    match.protocol = m.protocol;
  }
  if (m.port !== undefined) {
    if (m.protocol === undefined || !PORT_PROTOCOLS.has(m.protocol)) {
      return bad('match.port needs match.protocol "tcp", "udp" or "sctp"');
    }
    if (m.port < 1 || m.port > 65535) return bad(`match.port ${m.port} is outside 1 to 65535`);
    match.port = m.port;
  }
  return { ok: true, value: match };
}

/** netqos.io/unshaped-subnets: prefixes separated by commas, each canonical, none twice. */
export function readSubnets(text: string): Checked<string[]> {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length === 1 && parts[0] === '') return bad('no prefix named');
  const out: string[] = [];
  for (const p of parts) {
    if (p === '') return bad('empty entry in the list');
    const r = readCidr(p);
    if (!r.ok) return bad(r.reason);
    if (out.includes(r.value.text)) return bad(`${JSON.stringify(p)} is listed twice`);
    out.push(r.value.text);
  }
  return { ok: true, value: out };
}
