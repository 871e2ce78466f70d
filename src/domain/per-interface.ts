/**
 * Per-interface limits, `netqos.io/<ifname>.<suffix>` (docs/per-interface.md): the key syntax
 * and how an override combines with the pod-wide limits. Pure; the values are read by the
 * rules of the suffix table the caller passes (annotations.ts holds it, next to the pod-wide
 * keys, so a new per-interface key is one line there). Rejections name the key and why; the
 * caller turns them into the one-line INVALID_ANNOTATION message.
 *
 * Rules:
 * - A netqos.io/ key with a "." after the prefix is per-interface: the interface name is
 *   everything up to the LAST ".", the suffix the rest (names may hold dots: vlan.100; no
 *   suffix does). The name follows the kernel's rules (readIfname).
 * - A bandwidth override replaces the pod-wide limit of that direction of that interface whole:
 *   the pod-wide burst (and classes) go with the pod-wide rate and are not inherited.
 * - An override without a bandwidth (a burst alone) keeps the pod-wide rate of that direction
 *   and changes only its own field; with no pod-wide rate either, it is an error.
 * - With netqos.io/interfaces, an override for an interface not listed there is an error.
 */
import type { Checked } from './annotations.js';
import { readIfname } from './ifname.js';
import type { Direction, DirectionLimit, InterfaceLimits } from './spec.js';

export const NETQOS_PREFIX = 'netqos.io/';

/** How the value of one `<ifname>.<suffix>` key is read and where it goes. */
export interface SuffixRule {
  dir: Direction;
  /** the field of the direction's limit the value sets; rateBps makes the direction independent */
  field: keyof DirectionLimit;
  read: (text: string) => Checked<unknown>;
  /** a valid value, as the end of the rejection message: 'use a value such as "10M" ...' */
  example: string;
  /** what the value is, for "<noun> needs a rate": "a burst" */
  noun: string;
}
export type SuffixTable = Readonly<Record<string, SuffixRule>>;

export type Read<T> = { ok: true; value: T } | { ok: false; key: string; why: string };

/** The key-syntax check is cheap, so it runs before any value is read (a typo explains the rest). */
export const isPerInterfaceKey = (key: string): boolean =>
  key.startsWith(NETQOS_PREFIX) && key.includes('.', NETQOS_PREFIX.length);

export const perInterfaceKey = (ifname: string, suffix: string): string => `${NETQOS_PREFIX}${ifname}.${suffix}`;

interface Found {
  key: string;
  ifname: string;
  rule: SuffixRule;
}

/** Every per-interface key of `ours`, sorted (so the first complaint does not depend on key order). */
export function findPerInterfaceKeys(ours: Record<string, unknown>, table: SuffixTable): Read<Found[]> {
  const found: Found[] = [];
  const suffixes = Object.keys(table);
  const example = perInterfaceKey('net1', suffixes.find((s) => table[s]?.field === 'rateBps') ?? suffixes[0] ?? '');
  for (const key of Object.keys(ours).filter(isPerInterfaceKey).sort()) {
    const rest = key.slice(NETQOS_PREFIX.length);
    const dot = rest.lastIndexOf('.');
    const ifname = rest.slice(0, dot);
    const suffix = rest.slice(dot + 1);
    const rule = Object.hasOwn(table, suffix) ? table[suffix] : undefined;
    if (rule === undefined) {
      const known = suffixes.map((s) => `.${s}`).join(', ');
      return { ok: false, key, why: `unknown per-interface key ".${suffix}"; the known ones are netqos.io/<ifname>${known}, e.g. ${example}="10M"` };
    }
    const name = readIfname(ifname);
    if (!name.ok) {
      return { ok: false, key, why: `the interface name in the key is wrong: ${name.reason}; name one such as net1, e.g. ${example}="10M"` };
    }
    found.push({ key, ifname, rule });
  }
  return { ok: true, value: found };
}

/**
 * The per-interface limits, resolved against the pod-wide ones: for each interface and each
 * direction it overrides, the whole DirectionLimit the planner uses there. undefined when there
 * are no per-interface keys.
 */
export function readPerInterface(
  ours: Record<string, unknown>,
  table: SuffixTable,
  found: readonly Found[],
  pod: InterfaceLimits,
  /** netqos.io/interfaces when given: its names, and key=value as the user wrote it */
  interfaces?: { names: readonly string[]; shown: string },
): Read<Record<string, InterfaceLimits> | undefined> {
  if (found.length === 0) return { ok: true, value: undefined };
  type Pending = { fields: Record<string, unknown>; keys: Found[] };
  const byIf = new Map<string, Map<Direction, Pending>>();
  for (const f of found) {
    const text = ours[f.key];
    if (typeof text !== 'string') return { ok: false, key: f.key, why: `not a string; ${f.rule.example}` };
    const r = f.rule.read(text);
    if (!r.ok) return { ok: false, key: f.key, why: `${r.reason}; ${f.rule.example}` };
    const dirs = byIf.get(f.ifname) ?? new Map<Direction, Pending>();
    byIf.set(f.ifname, dirs);
    const partial = dirs.get(f.rule.dir) ?? { fields: {}, keys: [] };
    dirs.set(f.rule.dir, partial);
    partial.fields[f.rule.field] = r.value;
    partial.keys.push(f);
  }
  const out: Record<string, InterfaceLimits> = {};
  for (const [ifname, dirs] of byIf) {
    if (interfaces && !interfaces.names.includes(ifname)) {
      const key = [...dirs.values()][0]!.keys[0]!.key;
      return {
        ok: false,
        key,
        why: `${interfaces.shown} does not list ${ifname}, so ${ifname} is never shaped; add it there or drop this key`,
      };
    }
    const limits: InterfaceLimits = {};
    for (const [dir, partial] of dirs) {
      const merged = mergeOverride(pod[dir], partial.fields as Partial<DirectionLimit>);
      if (merged === undefined) {
        const f = partial.keys[0]!;
        const rateSuffix = Object.keys(table).find((s) => table[s]?.dir === dir && table[s]?.field === 'rateBps') ?? '';
        const rateKey = perInterfaceKey(ifname, rateSuffix);
        return {
          ok: false,
          key: f.key,
          why: `${f.rule.noun} needs a rate: ${rateKey} or kubernetes.io/${dir}-bandwidth; add one, e.g. ${rateKey}="10M"`,
        };
      }
      limits[dir] = merged;
    }
    out[ifname] = limits;
  }
  return { ok: true, value: out };
}

/**
 * The precedence rule, the one place it lives: an override with a rate replaces the pod-wide
 * limit of its direction whole (the pod-wide burst belongs to the pod-wide rate); one without
 * keeps the pod-wide limit and replaces only its own fields. undefined: no rate on either side.
 */
export function mergeOverride(pod: DirectionLimit | undefined, own: Partial<DirectionLimit>): DirectionLimit | undefined {
  if (own.rateBps !== undefined) return { ...own, rateBps: own.rateBps };
  return pod === undefined ? undefined : { ...pod, ...own };
}
