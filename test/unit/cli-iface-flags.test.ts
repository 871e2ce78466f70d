/** `netqos apply --iface-*`: per-interface limits on the command line (docs/per-interface.md). */
import { describe, expect, it } from 'vitest';
import { parseCommandArgs } from '../../src/cli/args.js';
import { readApplyFlags } from '../../src/cli/apply-flags.js';
import { apply } from '../../src/cli/apply.js';
import { NetqosError } from '../../src/domain/errors.js';
import type { QosSpec } from '../../src/domain/spec.js';

const read = (argv: string[]) => readApplyFlags(apply.spec, parseCommandArgs(apply.spec, ['--pid', '1', ...argv]));
const USAGE = `; usage: ${apply.spec.usage}`;
const RATE = 'use IF=RATE items separated by commas such as "net1=40M" or "net1=40M,net2=1Gi"';
const BURST = 'use IF=BITS items separated by commas such as "net1=1M" or "net1=1M,net2=100k"';

function rejection(argv: string[]): string {
  try {
    read(argv);
  } catch (e) {
    expect(e).toBeInstanceOf(NetqosError);
    expect((e as NetqosError).code).toBe('INVALID_ARGUMENT');
    expect((e as NetqosError).message).not.toContain('\n');
    return (e as NetqosError).message;
  }
  throw new Error(`accepted ${JSON.stringify(argv)}`);
}

describe('--iface-* accepted', () => {
  const cases: Array<[string[], QosSpec]> = [
    [['--iface-egress', 'net1=40M'], { perInterface: { net1: { egress: { rateBps: 40e6 } } } }],
    [
      ['--egress', '20M', '--iface-egress', 'net1=40M, net2=1Gi'],
      { egress: { rateBps: 20e6 }, perInterface: { net1: { egress: { rateBps: 40e6 } }, net2: { egress: { rateBps: 2 ** 30 } } } },
    ],
    [
      ['--ingress', '30M', '--iface-ingress', 'net1=10M', '--iface-ingress-burst', 'net1=1M'],
      { ingress: { rateBps: 30e6 }, perInterface: { net1: { ingress: { rateBps: 10e6, burstBits: 1e6 } } } },
    ],
    // a burst alone keeps the pod-wide rate; a rate override does not inherit the pod-wide burst
    [
      ['--egress', '10M', '--egress-burst', '2M', '--iface-egress-burst', 'net1=1M', '--iface-egress', 'net2=1G'],
      {
        egress: { rateBps: 10e6, burstBits: 2e6 },
        perInterface: { net1: { egress: { rateBps: 10e6, burstBits: 1e6 } }, net2: { egress: { rateBps: 1e9 } } },
      },
    ],
    [
      ['--iface-egress', 'vlan.100=5M', '--interfaces', 'vlan.100'],
      { interfaces: ['vlan.100'], perInterface: { 'vlan.100': { egress: { rateBps: 5e6 } } } },
    ],
  ];
  it.each(cases)('%j', (argv, spec) => {
    expect(read(argv)).toEqual(spec);
  });
});

describe('--iface-* rejected', () => {
  const cases: Array<[string[], string]> = [
    [['--iface-egress', 'net1'], `invalid --iface-egress "net1": "net1" is not IF=VALUE; ${RATE}`],
    [['--iface-egress', 'net1=10 M'], `invalid --iface-egress "net1=10 M": net1: not a Kubernetes quantity; ${RATE}`],
    [['--iface-ingress', 'net1=10m'], `invalid --iface-ingress "net1=10m": net1: below the minimum of 1k bit/s (a lowercase "m" means milli); ${RATE}`],
    [['--iface-egress', '=10M'], `invalid --iface-egress "=10M": no interface named; ${RATE}`],
    [['--iface-egress', 'eth0:1=10M'], `invalid --iface-egress "eth0:1=10M": "eth0:1" contains ":"; ${RATE}`],
    [['--iface-egress', 'net1=1M,net1=2M'], `invalid --iface-egress "net1=1M,net1=2M": "net1" is given twice; ${RATE}`],
    [['--iface-egress', 'net1=1M,'], `invalid --iface-egress "net1=1M,": "" is not IF=VALUE; ${RATE}`],
    [['--egress', '1M', '--iface-egress-burst', 'net1=lots'], `invalid --iface-egress-burst "net1=lots": net1: not a Kubernetes quantity; ${BURST}`],
    [
      ['--iface-ingress-burst', 'net1=1M'],
      `--iface-ingress-burst net1=... needs a rate for net1: --iface-ingress net1=RATE or --ingress, e.g. --iface-ingress net1=10M${USAGE}`,
    ],
    [
      ['--egress', '10M', '--iface-ingress-burst', 'net1=1M'],
      `--iface-ingress-burst net1=... needs a rate for net1: --iface-ingress net1=RATE or --ingress, e.g. --iface-ingress net1=10M${USAGE}`,
    ],
    [
      ['--egress', '10M', '--interfaces', 'eth0', '--iface-egress', 'net1=5M'],
      `an --iface-* flag names net1, which --interfaces does not list; add it there or drop it${USAGE}`,
    ],
  ];
  it.each(cases)('%j', (argv, message) => {
    expect(rejection(argv)).toBe(message);
  });
});
