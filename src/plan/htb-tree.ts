/** The HTB tree one direction of one device gets: root, one class rate = ceil, a bounded leaf. */
import type { Capabilities } from '../domain/link.js';
import type { Shaped, TcOp } from './ops.js';
import { burstBytes, leafQueue, quantum } from './params.js';
import { CLASS_ID, leafHandle, ROOT_HANDLE } from './names.js';

export interface TreeInput {
  /** the device the tree lives on (the container's device, or its ifb for ingress) */
  dev: string;
  /** true when our HTB root is already there: HTB cannot `qdisc replace` itself in place */
  rootExists: boolean;
  rateBps: number;
  userBurstBits?: number;
  mtu: number;
  maxSkb: number;
  latencyUs: number;
  caps: Capabilities;
}

export function htbTree(t: TreeInput): { ops: TcOp[]; shaped: Omit<Shaped, 'dev' | 'direction'> } {
  const burst = burstBytes(t.rateBps, t.mtu, t.userBurstBits);
  const q = quantum(t.rateBps, t.mtu);
  const leaf = leafQueue(t.rateBps, t.latencyUs, t.mtu, t.maxSkb, t.caps);
  const rate = `${Math.round(t.rateBps)}bit`;
  const ops: TcOp[] = [];
  if (!t.rootExists) {
    ops.push({ object: 'qdisc', verb: 'replace', dev: t.dev, parent: 'root', handle: ROOT_HANDLE, kind: 'htb', options: ['default', '1'] });
  }
  ops.push(
    {
      object: 'class',
      verb: 'replace',
      dev: t.dev,
      parent: ROOT_HANDLE,
      classid: CLASS_ID,
      kind: 'htb',
      options: ['rate', rate, 'ceil', rate, 'burst', `${burst}b`, 'cburst', `${burst}b`, 'quantum', String(q)],
    },
    { object: 'qdisc', verb: 'replace', dev: t.dev, parent: CLASS_ID, handle: leafHandle(leaf.kind), kind: leaf.kind, options: leaf.options },
  );
  return { ops, shaped: { shapedOn: t.dev, rateBps: t.rateBps, burstBytes: burst, quantum: q, leaf: leaf.describe } };
}
