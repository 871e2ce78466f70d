/** `netqos remove <target>`: take away everything netqos put in the target's namespace. */
import { removeQos, sriovFromConfig } from '../engine.js';
import { loadConfig } from './config.js';
import { assertNotHost } from '../kernel/netns.js';
import type { Command } from './command.js';
import { describeTarget, parseTarget, resolveTarget, TARGET_FLAGS, TARGET_USAGE } from './target.js';

export const remove: Command = {
  spec: { name: 'remove', usage: `netqos remove ${TARGET_USAGE}`, flags: TARGET_FLAGS, maxPositionals: 1 },
  summary: 'remove all shaping netqos put on a container',
  help: [
    'Removes netqos\'s HTB trees, ingress redirects and ifb devices from the target\'s namespace',
    'and restores the interfaces\' GSO size. Nothing else is touched; nothing to remove is fine.',
  ].join('\n'),
  async run(args, io) {
    const target = parseTarget(this.spec, args);
    const ref = await resolveTarget(target);
    assertNotHost(ref); // a mistyped path is an error here, not "nothing to remove"
    const res = await removeQos(ref, { sriov: sriovFromConfig(loadConfig(io)) });
    if (!res.present) {
      io.out(`${describeTarget(target)}: the namespace is gone, and everything in it: removed 0 objects\n`);
      return 0;
    }
    io.out(`${describeTarget(target)}: removed ${res.removed} object${res.removed === 1 ? '' : 's'}\n`);
    return 0;
  },
};
