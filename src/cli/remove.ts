/** `netqos remove <target>`: take away everything netqos put in the target's namespace. */
import { removeNodeShaping, removeQos, sriovFromConfig } from '../engine.js';
import { loadConfig } from './config.js';
import { assertNotHost } from '../kernel/netns.js';
import type { Command } from './command.js';
import { HOST_FLAGS, HOST_HELP, HOST_USAGE, readHostSide } from './host-flags.js';
import { describeTarget, parseTarget, resolveTarget, TARGET_FLAGS, TARGET_USAGE } from './target.js';

export const remove: Command = {
  spec: { name: 'remove', usage: `netqos remove ${TARGET_USAGE} ${HOST_USAGE}`, flags: { ...TARGET_FLAGS, ...HOST_FLAGS }, maxPositionals: 1 },
  summary: 'remove all shaping netqos put on a container',
  help: [
    'Removes netqos\'s HTB trees, ingress redirects and ifb devices from the target\'s namespace',
    'and restores the interfaces\' GSO size. Nothing else is touched; nothing to remove is fine.',
    'With vethShaping "host" the node\'s objects of the container go too; `netqos remove --id ID`',
    'alone removes them when the container (and its namespace) is already gone.',
    '',
    ...HOST_HELP,
  ].join('\n'),
  async run(args, io) {
    const noTarget = args.positionals.length === 0 && args.values.pid === undefined && args.values.netns === undefined;
    if (noTarget && typeof args.values.id === 'string') {
      const hostSide = await readHostSide(this.spec, args, loadConfig(io));
      if (hostSide) {
        const res = await removeNodeShaping(hostSide);
        io.out(`${hostSide.identity}: removed ${res.removed} object${res.removed === 1 ? '' : 's'} on the node\n`);
        return 0;
      }
    }
    const target = parseTarget(this.spec, args);
    const hostSide = await readHostSide(this.spec, args, loadConfig(io), target);
    const ref = await resolveTarget(target);
    assertNotHost(ref); // a mistyped path is an error here, not "nothing to remove"
    const res = await removeQos(ref, { sriov: sriovFromConfig(loadConfig(io)), hostSide });
    if (!res.present) {
      const node = hostSide ? `, and ${res.removed} object${res.removed === 1 ? '' : 's'} on the node` : ': removed 0 objects';
      io.out(`${describeTarget(target)}: the namespace is gone, and everything in it${node}\n`);
      return 0;
    }
    io.out(`${describeTarget(target)}: removed ${res.removed} object${res.removed === 1 ? '' : 's'}\n`);
    return 0;
  },
};
