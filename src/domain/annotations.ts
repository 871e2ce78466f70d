/**
 * Container annotations -> QosSpec. The Kubernetes bandwidth annotations plus our own
 * netqos.io/ keys, read directly from the container or from the JSON blob CRI-O passes pod
 * annotations in. Every rejection is one line the user sees when the container fails to start:
 * the key, the value, why, and a value that would work.
 */
import { NEVER, optional, pipe, strictObject, string, transform } from 'zod/mini';
import type { output } from 'zod/mini';
import { checkClasses, CLASSES_EXAMPLE, readClassList, readSubnets, SUBNETS_EXAMPLE } from './classes.js';
import { readDuration } from './duration.js';
import { readIfname } from './ifname.js';
import { NetqosError } from './errors.js';
import { findPerInterfaceKeys, NETQOS_PREFIX, readPerInterface, type SuffixTable } from './per-interface.js';
import { readQuantity } from './quantity.js';
import type { Direction, DirectionLimit, QosSpec } from './spec.js';

export const BANDWIDTH_KEYS = {
  ingress: 'kubernetes.io/ingress-bandwidth',
  egress: 'kubernetes.io/egress-bandwidth',
} as const satisfies Record<Direction, string>;

export const BURST_KEYS = {
  ingress: 'netqos.io/ingress-burst',
  egress: 'netqos.io/egress-burst',
} as const satisfies Record<Direction, string>;

export const CLASSES_KEYS = {
  ingress: 'netqos.io/ingress-classes',
  egress: 'netqos.io/egress-classes',
} as const satisfies Record<Direction, string>;

export const UNSHAPED_SUBNETS_KEY = 'netqos.io/unshaped-subnets';
export const QUEUE_LATENCY_KEY = 'netqos.io/queue-latency';
export const INTERFACES_KEY = 'netqos.io/interfaces';
export { NETQOS_PREFIX };
/** CRI-O hands the pod's annotations to hooks as one JSON-encoded string under this key */
export const CRIO_ANNOTATIONS_KEY = 'io.kubernetes.cri-o.Annotations';

export const NETQOS_KEYS: readonly string[] = [
  BURST_KEYS.ingress,
  BURST_KEYS.egress,
  QUEUE_LATENCY_KEY,
  INTERFACES_KEY,
  CLASSES_KEYS.ingress,
  CLASSES_KEYS.egress,
  UNSHAPED_SUBNETS_KEY,
];

/** Bandwidths and bursts, like containerd: 1k to 1P, compared after rounding up to an integer. */
export const MIN_BITS = 1e3;
export const MAX_BITS = 1e15;
export const MIN_QUEUE_LATENCY_US = 100;
export const MAX_QUEUE_LATENCY_US = 1_000_000;

export type Checked<T> = { ok: true; value: T } | { ok: false; reason: string };
const ok = <T>(value: T): Checked<T> => ({ ok: true, value });
const bad = (reason: string): Checked<never> => ({ ok: false, reason });

/** A bandwidth (bit/s) or a burst (bits): a quantity whose integer value lies in 1k..1P. */
export function readBits(text: string, unit: 'bit/s' | 'bits'): Checked<number> {
  const q = readQuantity(text);
  if (q === undefined) return bad('not a Kubernetes quantity');
  if (q.integer < 0) return bad('negative');
  if (q.integer < MIN_BITS) {
    // "10m" is the classic slip: 10 milli-bits, not 10 megabits
    const milli = text.endsWith('m') ? ' (a lowercase "m" means milli)' : '';
    return bad(`below the minimum of 1k ${unit}${milli}`);
  }
  if (q.integer > MAX_BITS) return bad(`above the maximum of 1P ${unit}`);
  return ok(q.integer);
}

/** A queue latency in whole microseconds, 100us..1s. */
export function readQueueLatency(text: string): Checked<number> {
  const us = readDuration(text);
  if (us === undefined) {
    return bad(/^[+-]?[0-9.]+$/.test(text) ? 'a duration needs a unit' : 'not a duration');
  }
  if (us < 0) return bad('negative');
  if (us < MIN_QUEUE_LATENCY_US) return bad('below the minimum of 100us');
  if (us > MAX_QUEUE_LATENCY_US) return bad('above the maximum of 1s');
  return ok(Math.round(us)); // sub-microsecond precision means nothing to a queue
}

/** A comma-separated list of interface names, each one readIfname accepts, none twice. */
export function readInterfaces(text: string): Checked<string[]> {
  const names = text.split(',').map((name) => name.trim());
  if (names.length === 1 && names[0] === '') return bad('no interface named');
  const seen = new Set<string>();
  for (const name of names) {
    if (name === '') return bad('empty name in the list');
    const r = readIfname(name);
    if (!r.ok) return r;
    if (seen.has(name)) return bad(`${JSON.stringify(name)} is listed twice`);
    seen.add(name);
  }
  return ok(names);
}

const EXAMPLE: Readonly<Record<string, string>> = {
  [BANDWIDTH_KEYS.ingress]: 'use a value such as "10M" (10 Mbit/s) or "1Gi"',
  [BANDWIDTH_KEYS.egress]: 'use a value such as "10M" (10 Mbit/s) or "1Gi"',
  [BURST_KEYS.ingress]: 'use a value in bits such as "1M" (125 kB) or "512Ki"',
  [BURST_KEYS.egress]: 'use a value in bits such as "1M" (125 kB) or "512Ki"',
  [QUEUE_LATENCY_KEY]: 'use a duration from 100us to 1s such as "5ms" or "500us"',
  [INTERFACES_KEY]: 'use interface names separated by commas such as "eth0" or "eth0,net1"',
  [CLASSES_KEYS.ingress]: CLASSES_EXAMPLE,
  [CLASSES_KEYS.egress]: CLASSES_EXAMPLE,
  [UNSHAPED_SUBNETS_KEY]: SUBNETS_EXAMPLE,
};

/**
 * The per-interface keys `netqos.io/<ifname>.<suffix>` (per-interface.ts, docs/per-interface.md):
 * one entry per suffix, read like the pod-wide key of the same meaning.
 */
export const PER_INTERFACE_SUFFIXES: SuffixTable = {
  'ingress-bandwidth': { dir: 'ingress', field: 'rateBps', read: (t) => readBits(t, 'bit/s'), example: EXAMPLE[BANDWIDTH_KEYS.ingress]!, noun: 'a bandwidth' },
  'egress-bandwidth': { dir: 'egress', field: 'rateBps', read: (t) => readBits(t, 'bit/s'), example: EXAMPLE[BANDWIDTH_KEYS.egress]!, noun: 'a bandwidth' },
  'ingress-burst': { dir: 'ingress', field: 'burstBits', read: (t) => readBits(t, 'bits'), example: EXAMPLE[BURST_KEYS.ingress]!, noun: 'a burst' },
  'egress-burst': { dir: 'egress', field: 'burstBits', read: (t) => readBits(t, 'bits'), example: EXAMPLE[BURST_KEYS.egress]!, noun: 'a burst' },
};

/** zod schema of one annotation value: a string that `read` accepts */
const value = <T>(read: (text: string) => Checked<T>) =>
  optional(
    pipe(
      string(),
      transform((text: string, ctx) => {
        const r = read(text);
        if (r.ok) return r.value;
        ctx.issues.push({ code: 'custom', message: r.reason, input: text });
        return NEVER;
      }),
    ),
  );

/** Our keys only (the caller picks them out); strict, so a misspelt netqos.io/ key is an error. */
const buildSchema = () =>
  strictObject({
    [BANDWIDTH_KEYS.ingress]: value((t) => readBits(t, 'bit/s')),
    [BANDWIDTH_KEYS.egress]: value((t) => readBits(t, 'bit/s')),
    [BURST_KEYS.ingress]: value((t) => readBits(t, 'bits')),
    [BURST_KEYS.egress]: value((t) => readBits(t, 'bits')),
    [QUEUE_LATENCY_KEY]: value(readQueueLatency),
    [INTERFACES_KEY]: value(readInterfaces),
    [CLASSES_KEYS.ingress]: value(readClassList),
    [CLASSES_KEYS.egress]: value(readClassList),
    [UNSHAPED_SUBNETS_KEY]: value(readSubnets),
  });
type Parsed = output<ReturnType<typeof buildSchema>>;
// Built on first use: most containers never need it (see readBandwidthOnly), and the OCI hook
// pays for every millisecond of module load.
let schema: ReturnType<typeof buildSchema> | undefined;

const isOurs = (key: string): boolean =>
  key === BANDWIDTH_KEYS.egress || key === BANDWIDTH_KEYS.ingress || key.startsWith(NETQOS_PREFIX);

/**
 * The QoS a container asks for, or null when it asks for none (no bandwidth annotation and no
 * netqos.io/ key: the container is left untouched). Throws INVALID_ANNOTATION otherwise.
 */
export function parseAnnotations(annotations: Readonly<Record<string, string>>): QosSpec | null {
  const all = pickOurs(annotations);
  if (all === undefined) return null;
  const found = findPerInterfaceKeys(all, PER_INTERFACE_SUFFIXES);
  if (!found.ok) throw invalid(found.key, all[found.key], found.why);
  // the pod-wide keys go through the schema (or the hot path); the per-interface ones come after
  const ours = found.value.length === 0 ? all : withoutKeys(all, found.value.map((f) => f.key));
  const p = readBandwidthOnly(ours) ?? readWithSchema(ours);
  const spec: QosSpec = {};
  for (const dir of ['ingress', 'egress'] as const) {
    const rateBps = p[BANDWIDTH_KEYS[dir]];
    const burstBits = p[BURST_KEYS[dir]];
    if (burstBits !== undefined && rateBps === undefined) {
      throw invalid(
        BURST_KEYS[dir],
        ours[BURST_KEYS[dir]],
        `a burst needs ${BANDWIDTH_KEYS[dir]} on the same container; add it, e.g. ${BANDWIDTH_KEYS[dir]}="10M"`,
      );
    }
    const classes = p[CLASSES_KEYS[dir]];
    if (classes !== undefined && rateBps === undefined) {
      throw invalid(
        CLASSES_KEYS[dir],
        ours[CLASSES_KEYS[dir]],
        `classes share a total: add ${BANDWIDTH_KEYS[dir]} on the same container, e.g. ${BANDWIDTH_KEYS[dir]}="50M"`,
      );
    }
    if (rateBps === undefined) continue;
    const limit: DirectionLimit = { rateBps };
    if (burstBits !== undefined) limit.burstBits = burstBits;
    if (classes !== undefined) {
      const checked = checkClasses(classes, rateBps, BANDWIDTH_KEYS[dir]);
      if (!checked.ok) throw invalid(CLASSES_KEYS[dir], ours[CLASSES_KEYS[dir]], `${checked.reason}; ${CLASSES_EXAMPLE}`);
      limit.classes = checked.value;
    }
    spec[dir] = limit;
  }
  const interfaces = p[INTERFACES_KEY];
  const perIf = readPerInterface(
    all,
    PER_INTERFACE_SUFFIXES,
    found.value,
    spec,
    interfaces && { names: interfaces, shown: `${INTERFACES_KEY}=${show(ours[INTERFACES_KEY])}` },
  );
  if (!perIf.ok) throw invalid(perIf.key, all[perIf.key], perIf.why);
  if (!spec.ingress && !spec.egress && perIf.value === undefined) {
    const key = NETQOS_KEYS.find((k) => k in ours) ?? '';
    throw invalid(
      key,
      ours[key],
      `netqos.io annotations need a bandwidth annotation; add ${BANDWIDTH_KEYS.egress} and/or ` +
        `${BANDWIDTH_KEYS.ingress}, e.g. ${BANDWIDTH_KEYS.egress}="10M"`,
    );
  }
  const latency = p[QUEUE_LATENCY_KEY];
  if (latency !== undefined) spec.queueLatencyUs = latency;
  if (interfaces !== undefined) spec.interfaces = interfaces;
  const subnets = p[UNSHAPED_SUBNETS_KEY];
  if (subnets !== undefined) spec.unshapedSubnets = subnets;
  if (perIf.value !== undefined) spec.perInterface = perIf.value;
  return spec;
}

function withoutKeys(ours: Record<string, unknown>, drop: readonly string[]): Record<string, unknown> {
  const rest: Record<string, unknown> = {};
  for (const key of Object.keys(ours)) if (!drop.includes(key)) rest[key] = ours[key];
  return rest;
}

/**
 * The hot path: a container with nothing but Kubernetes bandwidth annotations (string values),
 * read without building or running the schema; the same readers give the same messages.
 * undefined when anything else is present.
 */
function readBandwidthOnly(ours: Record<string, unknown>): Parsed | undefined {
  const simple = (key: string): boolean =>
    (key === BANDWIDTH_KEYS.ingress || key === BANDWIDTH_KEYS.egress) && typeof ours[key] === 'string';
  if (!Object.keys(ours).every(simple)) return undefined; // checked before any complaint, as the schema would
  const p: Parsed = {};
  for (const key of [BANDWIDTH_KEYS.ingress, BANDWIDTH_KEYS.egress]) {
    const text = ours[key];
    if (typeof text !== 'string') continue; // absent
    const r = readBits(text, 'bit/s');
    if (!r.ok) throw invalid(key, text, `${r.reason}; ${EXAMPLE[key] ?? ''}`);
    p[key] = r.value;
  }
  return p;
}

/** Every key of ours through the zod schema; throws on the first (most useful) problem. */
function readWithSchema(ours: Record<string, unknown>): Parsed {
  const parsed = (schema ??= buildSchema()).safeParse(ours);
  if (parsed.success) return parsed.data;
  // report the misspelt key first: it usually explains the other complaints
  const issues = parsed.error.issues;
  const issue = issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0];
  if (issue?.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    const perIf = Object.keys(PER_INTERFACE_SUFFIXES).map((suffix) => `.${suffix}`).join(', ');
    throw invalid(
      key,
      ours[key],
      `unknown netqos.io key; the known ones are ${NETQOS_KEYS.join(', ')}, and per interface netqos.io/<ifname>${perIf}`,
    );
  }
  const key = String(issue?.path[0] ?? '');
  const why = issue?.code === 'custom' ? issue.message : 'not a string';
  throw invalid(key, ours[key], `${why}; ${EXAMPLE[key] ?? ''}`);
}

/**
 * Our keys from the container's annotations, then from the CRI-O blob for keys the container
 * does not carry itself (the container's own annotation wins). undefined when there are none.
 */
function pickOurs(annotations: Readonly<Record<string, string>>): Record<string, unknown> | undefined {
  let ours: Record<string, unknown> | undefined;
  for (const key of Object.keys(annotations)) {
    if (isOurs(key)) (ours ??= {})[key] = annotations[key];
  }
  const blob = annotations[CRIO_ANNOTATIONS_KEY];
  // Hot path: most containers have no annotation of ours, so look for our key names in the text
  // before paying for JSON.parse. CRI-O encodes the blob with Go's encoding/json, which leaves
  // "/" and ASCII letters alone, so a key of ours always appears verbatim.
  if (typeof blob !== 'string' || !mentionsOurs(blob)) return ours;
  const pod = parseBlob(blob);
  for (const key of Object.keys(pod)) {
    if (isOurs(key) && !(ours && Object.hasOwn(ours, key))) (ours ??= {})[key] = pod[key];
  }
  return ours;
}

const mentionsOurs = (text: string): boolean =>
  text.includes(NETQOS_PREFIX) ||
  text.includes(BANDWIDTH_KEYS.ingress) ||
  text.includes(BANDWIDTH_KEYS.egress);

/**
 * The CRI-O blob as an object. A blob that is not a JSON object is CRI-O's problem, not the
 * user's: we ignore it rather than fail every container on a runtime quirk we cannot fix.
 * A well-formed blob whose keys of ours have bad values is rejected like any annotation.
 */
function parseBlob(blob: string): Record<string, unknown> {
  let pod: unknown;
  try {
    pod = JSON.parse(blob);
  } catch {
    return {};
  }
  return typeof pod === 'object' && pod !== null && !Array.isArray(pod)
    ? (pod as Record<string, unknown>)
    : {};
}

/** The one-line rejection: key, value, why and a valid example. */
function invalid(key: string, value: unknown, why: string): NetqosError {
  // a key with a control character in it (a per-interface key can carry any name) stays one line
  const shownKey = /[\x00-\x1f\x7f]/.test(key) ? JSON.stringify(key) : key;
  return new NetqosError('INVALID_ANNOTATION', `invalid annotation ${shownKey}=${show(value)}: ${why}`);
}

/** The value as the user wrote it: quoted, escaped to one line, cut short if huge. */
function show(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  const cut = text.length > 80 ? `${text.slice(0, 77)}...` : text;
  return typeof value === 'string' ? JSON.stringify(cut) : cut;
}
