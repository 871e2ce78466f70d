/**
 * `netqos apply --iface-egress IF=RATE[,IF=RATE...]` and its siblings: per-interface limits on the
 * command line, the counterpart of the netqos.io/<ifname>.<dir>-{bandwidth,burst} annotations,
 * read with the same readers and combined with --egress/--ingress by the same rule
 * (mergeOverride, docs/per-interface.md). Pure.
 */
import { readBits, type Checked } from '../domain/annotations.js';
import { readIfname } from '../domain/ifname.js';
import { mergeOverride } from '../domain/per-interface.js';
import type { Direction, DirectionLimit, InterfaceLimits, QosSpec } from '../domain/spec.js';
import { invalidFlag, stringFlag, usageError, type CommandSpec, type FlagSpec, type ParsedArgs } from './args.js';

export const IFACE_FLAGS: Readonly<Record<string, FlagSpec>> = {
  'iface-egress': { type: 'string' },
  'iface-ingress': { type: 'string' },
  'iface-egress-burst': { type: 'string' },
  'iface-ingress-burst': { type: 'string' },
};

const RATE_EXAMPLE = 'use IF=RATE items separated by commas such as "net1=40M" or "net1=40M,net2=1Gi"';
const BURST_EXAMPLE = 'use IF=BITS items separated by commas such as "net1=1M" or "net1=1M,net2=100k"';

/** "net1=40M,net2=1G" -> [[net1, 40e6], [net2, 1e9]] */
function readList(text: string, read: (value: string) => Checked<number>): Checked<Array<[string, number]>> {
  const out: Array<[string, number]> = [];
  for (const item of text.split(',').map((i) => i.trim())) {
    const eq = item.lastIndexOf('=');
    if (eq < 0) return { ok: false, reason: `${JSON.stringify(item)} is not IF=VALUE` };
    const name = readIfname(item.slice(0, eq));
    if (!name.ok) return name;
    if (out.some(([n]) => n === name.value)) return { ok: false, reason: `${JSON.stringify(name.value)} is given twice` };
    const value = read(item.slice(eq + 1));
    if (!value.ok) return { ok: false, reason: `${name.value}: ${value.reason}` };
    out.push([name.value, value.value]);
  }
  return { ok: true, value: out };
}

/** spec.perInterface from the --iface-* flags (spec holds the pod-wide flags already); undefined when none */
export function readIfaceFlags(cmd: CommandSpec, args: ParsedArgs, spec: QosSpec): Record<string, InterfaceLimits> | undefined {
  const own = new Map<string, Partial<Record<Direction, Partial<DirectionLimit>>>>();
  const set = (ifname: string, dir: Direction, field: 'rateBps' | 'burstBits', value: number): void => {
    const limits = own.get(ifname) ?? {};
    own.set(ifname, limits);
    (limits[dir] ??= {})[field] = value;
  };
  for (const dir of ['egress', 'ingress'] as const) {
    for (const [flag, field, unit, example] of [
      [`iface-${dir}`, 'rateBps', 'bit/s', RATE_EXAMPLE],
      [`iface-${dir}-burst`, 'burstBits', 'bits', BURST_EXAMPLE],
    ] as const) {
      const text = stringFlag(args, flag);
      if (text === undefined) continue;
      const r = readList(text, (v) => readBits(v, unit));
      if (!r.ok) throw invalidFlag(flag, text, r.reason, example);
      for (const [ifname, value] of r.value) set(ifname, dir, field, value);
    }
  }
  if (own.size === 0) return undefined;
  const out: Record<string, InterfaceLimits> = {};
  for (const [ifname, dirs] of own) {
    if (spec.interfaces && !spec.interfaces.includes(ifname)) {
      throw usageError(cmd, `an --iface-* flag names ${ifname}, which --interfaces does not list; add it there or drop it`);
    }
    const limits: InterfaceLimits = {};
    for (const dir of ['egress', 'ingress'] as const) {
      const o = dirs[dir];
      if (o === undefined) continue;
      const merged = mergeOverride(spec[dir], o);
      if (merged === undefined) {
        throw usageError(
          cmd,
          `--iface-${dir}-burst ${ifname}=... needs a rate for ${ifname}: --iface-${dir} ${ifname}=RATE or --${dir}, e.g. --iface-${dir} ${ifname}=10M`,
        );
      }
      limits[dir] = merged;
    }
    out[ifname] = limits;
  }
  return out;
}
