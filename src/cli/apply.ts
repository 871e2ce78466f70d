/** `netqos apply <target> --egress RATE --ingress RATE ...`: shape a running container now. */
import { applyQos, sriovFromConfig } from '../engine.js';
import type { Shaped } from '../plan/ops.js';
import { APPLY_FLAGS, readApplyFlags } from './apply-flags.js';
import type { Command } from './command.js';
import { loadConfig } from './config.js';
import { formatBytes, formatRate, formatTable } from './table.js';
import { HOST_FLAGS, HOST_HELP, HOST_USAGE, readHostSide } from './host-flags.js';
import { describeTarget, parseTarget, resolveTarget, TARGET_FLAGS, TARGET_USAGE } from './target.js';

/** The table apply and demo print: what was shaped, where, how. */
export function renderShaped(shaped: readonly Shaped[]): string {
  return formatTable(
    ['INTERFACE', 'DIRECTION', 'SHAPED ON', 'RATE', 'BURST', 'LEAF'],
    shaped.map((s) => [s.dev, s.direction, s.onNode ? `${s.shapedOn} (node)` : s.shapedOn, formatRate(s.rateBps), formatBytes(s.burstBytes), s.leaf]),
    ['left', 'left', 'left', 'right', 'right', 'left'],
  );
}

export const apply: Command = {
  spec: {
    name: 'apply',
    usage:
      `netqos apply ${TARGET_USAGE} [--egress RATE] [--ingress RATE] [--egress-burst BITS] ` +
      '[--ingress-burst BITS] [--queue-latency DURATION] [--interfaces IF[,IF...]] ' +
      '[--iface-egress IF=RATE[,...]] [--iface-ingress IF=RATE[,...]] [--iface-egress-burst IF=BITS[,...]] [--iface-ingress-burst IF=BITS[,...]] ' +
      HOST_USAGE,
    flags: { ...TARGET_FLAGS, ...APPLY_FLAGS, ...HOST_FLAGS },
    maxPositionals: 1,
  },
  summary: 'shape a running container (or namespace) now',
  help: [
    'Shapes the target\'s interfaces as the annotations would, replacing what netqos set before:',
    'a direction not given is unshaped. At least one of --egress / --ingress is required.',
    'Directions are the container\'s view: egress = out of it, ingress = into it.',
    '',
    '  --egress RATE              layer-2 rate out of the container, a Kubernetes quantity in bit/s ("10M", "1Gi")',
    '  --ingress RATE             layer-2 rate into the container',
    '  --egress-burst BITS        HTB burst in bits ("100k"); default about 10 ms of rate',
    '  --ingress-burst BITS',
    '  --queue-latency DURATION   how long the leaf queue may hold packets ("5ms"); default from the config',
    '  --interfaces IF[,IF...]    only these interfaces; default every veth/macvlan/ipvlan/VF',
    '  --iface-egress IF=RATE[,IF=RATE...]   this interface\'s own egress rate, replacing --egress there',
    '  --iface-ingress IF=RATE[,...]         this interface\'s own ingress rate, replacing --ingress there',
    '  --iface-egress-burst IF=BITS[,...]    this interface\'s own burst (with its own rate, or --egress\'s)',
    '  --iface-ingress-burst IF=BITS[,...]',
    '                             (docs/per-interface.md; an --iface-* limit alone shapes only that interface)',
    ...HOST_HELP,
  ].join('\n'),
  async run(args, io) {
    const spec = readApplyFlags(this.spec, args);
    const target = parseTarget(this.spec, args);
    const config = loadConfig(io);
    const hostSide = await readHostSide(this.spec, args, config, target);
    const ref = await resolveTarget(target);
    const res = await applyQos(ref, spec, { defaultLatencyUs: config.queueLatencyUs, sriov: sriovFromConfig(config), hostSide });
    for (const w of res.warnings ?? []) io.err(`netqos: warning: ${w}\n`);
    for (const r of res.vfRates ?? []) io.out(`${r.pf} vf ${r.vf}: max_tx_rate ${r.maxTxMbit} Mbit/s\n`);
    if (res.shaped.length === 0) {
      io.out(`${describeTarget(target)}: no interface to shape (only loopback or unsupported kinds)\n`);
      return 0;
    }
    io.out(`shaped ${describeTarget(target)}:\n${renderShaped(res.shaped)}`);
    return 0;
  },
};
