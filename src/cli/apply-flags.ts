/**
 * `netqos apply` flags -> QosSpec, with the same readers (and limits) as the annotations, so a
 * value means on the command line exactly what it means on a container. Pure.
 */
import { readBits, readInterfaces, readQueueLatency, type Checked } from '../domain/annotations.js';
import type { Direction, QosSpec } from '../domain/spec.js';
import { invalidFlag, stringFlag, usageError, type CommandSpec, type FlagSpec, type ParsedArgs } from './args.js';
import { IFACE_FLAGS, readIfaceFlags } from './apply-iface-flags.js';

export const APPLY_FLAGS: Readonly<Record<string, FlagSpec>> = {
  egress: { type: 'string' },
  ingress: { type: 'string' },
  'egress-burst': { type: 'string' },
  'ingress-burst': { type: 'string' },
  'queue-latency': { type: 'string' },
  interfaces: { type: 'string' },
  ...IFACE_FLAGS,
};

const RATE_EXAMPLE = 'use a value such as "10M" (10 Mbit/s) or "1Gi"';
const BURST_EXAMPLE = 'use a value in bits such as "100k" or "1M" (125 kB)';
const LATENCY_EXAMPLE = 'use a duration from 100us to 1s such as "5ms" or "500us"';
const INTERFACES_EXAMPLE = 'use interface names separated by commas such as "eth0" or "eth0,net1"';

function flag<T>(args: ParsedArgs, name: string, read: (text: string) => Checked<T>, example: string): T | undefined {
  const text = stringFlag(args, name);
  if (text === undefined) return undefined;
  const r = read(text);
  if (!r.ok) throw invalidFlag(name, text, r.reason, example);
  return r.value;
}

export function readApplyFlags(spec: CommandSpec, args: ParsedArgs): QosSpec {
  const out: QosSpec = {};
  for (const dir of ['egress', 'ingress'] as const satisfies readonly Direction[]) {
    const rateBps = flag(args, dir, (t) => readBits(t, 'bit/s'), RATE_EXAMPLE);
    const burstBits = flag(args, `${dir}-burst`, (t) => readBits(t, 'bits'), BURST_EXAMPLE);
    if (burstBits !== undefined && rateBps === undefined) {
      throw usageError(spec, `--${dir}-burst needs --${dir} (a burst belongs to a rate), e.g. --${dir} 10M --${dir}-burst 100k`);
    }
    if (rateBps === undefined) continue;
    out[dir] = burstBits === undefined ? { rateBps } : { rateBps, burstBits };
  }
  const latency = flag(args, 'queue-latency', readQueueLatency, LATENCY_EXAMPLE);
  if (latency !== undefined) out.queueLatencyUs = latency;
  const interfaces = flag(args, 'interfaces', readInterfaces, INTERFACES_EXAMPLE);
  if (interfaces !== undefined) out.interfaces = interfaces;
  const perInterface = readIfaceFlags(spec, args, out);
  if (perInterface !== undefined) out.perInterface = perInterface;
  if (!out.egress && !out.ingress && !out.perInterface) {
    throw usageError(spec, 'give --egress and/or --ingress (to unshape, use netqos remove)');
  }
  return out;
}
