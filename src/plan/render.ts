/** Plans to `ip -batch` / `tc -batch` text: one line per operation. Pure. */
import type { IpOp, TcOp } from './ops.js';

const VERB = { add: 'add', delete: 'del' } as const;

export function renderTcOp(op: TcOp): string {
  const opts = 'options' in op && op.options ? op.options : [];
  switch (op.object) {
    case 'qdisc': {
      const where = op.parent === 'root' ? 'root' : op.parent === 'ingress' ? '' : `parent ${op.parent}`;
      if (op.verb === 'delete') return ['qdisc del dev', op.dev, op.parent === 'ingress' ? 'ingress' : where].join(' ');
      return [`qdisc ${op.verb} dev`, op.dev, where, op.handle ? `handle ${op.handle}` : '', op.kind ?? '', ...opts]
        .filter((w) => w !== '')
        .join(' ');
    }
    case 'class':
      if (op.verb === 'delete') return `class del dev ${op.dev} classid ${op.classid}`;
      return ['class replace dev', op.dev, 'parent', op.parent, 'classid', op.classid, op.kind ?? 'htb', ...opts].join(' ');
    case 'filter': {
      const head = [`filter ${VERB[op.verb]} dev`, op.dev, 'parent', op.parent, 'protocol', op.protocol ?? 'all', 'prio', String(op.prio)];
      if (op.verb === 'delete') return head.join(' ');
      return [...head, op.kind ?? '', ...opts].filter((w) => w !== '').join(' ');
    }
  }
}

export function renderIpOp(op: IpOp): string {
  switch (op.verb) {
    case 'add':
      // created up: one netlink change fewer than a separate `link set up`
      return `link add ${op.name} mtu ${op.mtu} up type ${op.kind}`;
    case 'up':
      return `link set dev ${op.name} up`;
    case 'gso':
      return `link set dev ${op.name} gso_max_size ${op.gsoMaxSize}`;
    case 'alias':
      return `link set dev ${op.name} alias ${op.alias}`;
    case 'delete':
      return `link del dev ${op.name}`;
  }
}

export const renderTc = (ops: readonly TcOp[]): string => ops.map((o) => `${renderTcOp(o)}\n`).join('');
export const renderIp = (ops: readonly IpOp[]): string => ops.map((o) => `${renderIpOp(o)}\n`).join('');
