/**
 * `netqos gc [--dry-run] [--json] [--host-netns PATH]`: removes netqos's ifbs on the node whose
 * container is gone (vethShaping "host"), and never anything else: only nqh ifbs that carry
 * netqos's alias are candidates, and only those still orphaned after a second look.
 */
import { gcHost } from '../engine-host.js';
import type { Orphan } from '../plan/host-gc.js';
import { booleanFlag, invalidFlag, stringFlag } from './args.js';
import type { Command } from './command.js';
import { readHostNetns } from './host-flags.js';
import { formatTable } from './table.js';

export function renderOrphans(orphans: readonly Orphan[], removed: boolean): string {
  if (orphans.length === 0) return 'no orphaned netqos objects on the node\n';
  const table = formatTable(
    ['IFB', 'CONTAINER', 'INTERFACE', 'WHY'],
    orphans.map((o) => [o.ifb, o.identity.slice(0, 12), o.containerIf, o.reason]),
  );
  return `${table}${removed ? 'removed' : 'would remove (--dry-run)'} ${orphans.length} ifb${orphans.length === 1 ? '' : 's'}\n`;
}

export const gc: Command = {
  spec: {
    name: 'gc',
    usage: 'netqos gc [--dry-run] [--json] [--host-netns PATH] [--grace-ms MS]',
    flags: { 'dry-run': { type: 'boolean' }, json: { type: 'boolean' }, 'host-netns': { type: 'string' }, 'grace-ms': { type: 'string' } },
    maxPositionals: 0,
  },
  summary: 'remove netqos objects on the node whose container is gone',
  help: [
    'With vethShaping "host", each shaped veth has an ifb on the node (nqh + 12 hex, its alias',
    'naming the container). One whose veth is gone, or that nothing redirects to any more, is an',
    'orphan; it is removed if it is still one after a second look (--grace-ms later, default 1000).',
    'Nothing else on the node is ever touched.',
    '',
    '  --dry-run            list the orphans, remove nothing',
    '  --json               print {"orphans": [...], "removed": N}',
    '  --host-netns PATH    the node\'s namespace; default /proc/1/ns/net',
    '  --grace-ms MS        the wait between the two looks, 0..60000',
  ].join('\n'),
  async run(args, io) {
    const grace = stringFlag(args, 'grace-ms');
    if (grace !== undefined && (!/^[0-9]{1,5}$/.test(grace) || Number(grace) > 60_000)) {
      throw invalidFlag('grace-ms', grace, 'not a whole number of milliseconds from 0 to 60000', 'use a value such as "1000"');
    }
    const netns = readHostNetns(args);
    const dryRun = booleanFlag(args, 'dry-run');
    const res = await gcHost({ ...(netns ? { netns } : {}), dryRun, ...(grace !== undefined ? { graceMs: Number(grace) } : {}) });
    io.out(booleanFlag(args, 'json') ? `${JSON.stringify(res, null, 2)}\n` : renderOrphans(res.orphans, !dryRun));
    return 0;
  },
};
