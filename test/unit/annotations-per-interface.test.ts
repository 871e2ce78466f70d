/**
 * Per-interface limits, netqos.io/<ifname>.<suffix> (docs/per-interface.md): accepted values and
 * how they combine with the pod-wide ones; every rejection with its exact one-line message.
 */
import { describe, expect, it } from 'vitest';
import { parseAnnotations } from '../../src/domain/annotations.js';
import { NetqosError } from '../../src/domain/errors.js';
import type { QosSpec } from '../../src/domain/spec.js';

const IN = 'kubernetes.io/ingress-bandwidth';
const EG = 'kubernetes.io/egress-bandwidth';
const IN_BURST = 'netqos.io/ingress-burst';
const EG_BURST = 'netqos.io/egress-burst';
const LATENCY = 'netqos.io/queue-latency';
const IFACES = 'netqos.io/interfaces';
const CRIO = 'io.kubernetes.cri-o.Annotations';
const key = (ifname: string, suffix: string) => `netqos.io/${ifname}.${suffix}`;
const N1_EG = key('net1', 'egress-bandwidth');
const N1_IN = key('net1', 'ingress-bandwidth');
const N1_EG_BURST = key('net1', 'egress-burst');
const N1_IN_BURST = key('net1', 'ingress-burst');

const BW_EXAMPLE = 'use a value such as "10M" (10 Mbit/s) or "1Gi"';
const BURST_EXAMPLE = 'use a value in bits such as "1M" (125 kB) or "512Ki"';
const KNOWN_SUFFIXES = 'netqos.io/<ifname>.ingress-bandwidth, .egress-bandwidth, .ingress-burst, .egress-burst';

function rejection(annotations: Record<string, string>): string {
  try {
    parseAnnotations(annotations);
  } catch (e) {
    expect(e).toBeInstanceOf(NetqosError);
    expect((e as NetqosError).code).toBe('INVALID_ANNOTATION');
    const message = (e as NetqosError).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error(`accepted ${JSON.stringify(annotations)}`);
}

describe('per-interface: what a pod gets', () => {
  const cases: Array<[string, Record<string, string>, QosSpec]> = [
    [
      'only a per-interface key: it counts as a bandwidth annotation, nothing pod-wide',
      { [N1_EG]: '5M' },
      { perInterface: { net1: { egress: { rateBps: 5e6 } } } },
    ],
    [
      'an override beside the pod-wide value of the same direction',
      { [EG]: '10M', [N1_EG]: '5M' },
      { egress: { rateBps: 10e6 }, perInterface: { net1: { egress: { rateBps: 5e6 } } } },
    ],
    [
      'an override of one direction leaves the other direction pod-wide (no entry for it)',
      { [EG]: '10M', [IN]: '20M', [N1_IN]: '3M' },
      { egress: { rateBps: 10e6 }, ingress: { rateBps: 20e6 }, perInterface: { net1: { ingress: { rateBps: 3e6 } } } },
    ],
    [
      'a bandwidth override does not inherit the pod-wide burst (a burst belongs to its rate)',
      { [EG]: '10M', [EG_BURST]: '2M', [N1_EG]: '1G' },
      { egress: { rateBps: 10e6, burstBits: 2e6 }, perInterface: { net1: { egress: { rateBps: 1e9 } } } },
    ],
    [
      'a bandwidth override with its own burst',
      { [N1_EG]: '5M', [N1_EG_BURST]: '1M' },
      { perInterface: { net1: { egress: { rateBps: 5e6, burstBits: 1e6 } } } },
    ],
    [
      'a burst alone keeps the pod-wide rate of that direction',
      { [EG]: '10M', [N1_EG_BURST]: '1M' },
      { egress: { rateBps: 10e6 }, perInterface: { net1: { egress: { rateBps: 10e6, burstBits: 1e6 } } } },
    ],
    [
      'a burst alone replaces the pod-wide burst on that interface',
      { [IN]: '10M', [IN_BURST]: '2M', [N1_IN_BURST]: '512Ki' },
      { ingress: { rateBps: 10e6, burstBits: 2e6 }, perInterface: { net1: { ingress: { rateBps: 10e6, burstBits: 524_288 } } } },
    ],
    [
      'several interfaces, both directions, each its own',
      { [key('eth0', 'egress-bandwidth')]: '10M', [key('eth0', 'ingress-bandwidth')]: '20M', [N1_EG]: '30M', [N1_IN]: '40M' },
      {
        perInterface: {
          eth0: { egress: { rateBps: 10e6 }, ingress: { rateBps: 20e6 } },
          net1: { egress: { rateBps: 30e6 }, ingress: { rateBps: 40e6 } },
        },
      },
    ],
    [
      'a name with dots: the name is everything before the last dot',
      { [key('vlan.100', 'egress-bandwidth')]: '5M' },
      { perInterface: { 'vlan.100': { egress: { rateBps: 5e6 } } } },
    ],
    [
      'a 15-byte name (the kernel limit) and the kernel\'s other allowed characters',
      { [key('abcdefghijklmno', 'egress-bandwidth')]: '5M', [key('br-x_y@z', 'ingress-bandwidth')]: '1k' },
      { perInterface: { abcdefghijklmno: { egress: { rateBps: 5e6 } }, 'br-x_y@z': { ingress: { rateBps: 1000 } } } },
    ],
    [
      'with netqos.io/interfaces listing the interface',
      { [EG]: '10M', [IFACES]: 'eth0,net1', [N1_EG]: '5M', [LATENCY]: '2ms' },
      { egress: { rateBps: 10e6 }, interfaces: ['eth0', 'net1'], queueLatencyUs: 2000, perInterface: { net1: { egress: { rateBps: 5e6 } } } },
    ],
    [
      'queue latency with only per-interface limits',
      { [LATENCY]: '1ms', [N1_IN]: '5M' },
      { queueLatencyUs: 1000, perInterface: { net1: { ingress: { rateBps: 5e6 } } } },
    ],
  ];
  it.each(cases)('%s', (_, annotations, spec) => {
    expect(parseAnnotations(annotations)).toEqual(spec);
  });

  it('reads the keys from the CRI-O blob; the container\'s own key wins', () => {
    const blob = JSON.stringify({ [N1_EG]: '5M', [N1_IN]: '6M' });
    expect(parseAnnotations({ [CRIO]: blob })).toEqual({
      perInterface: { net1: { egress: { rateBps: 5e6 }, ingress: { rateBps: 6e6 } } },
    });
    expect(parseAnnotations({ [N1_EG]: '7M', [CRIO]: blob })).toEqual({
      perInterface: { net1: { egress: { rateBps: 7e6 }, ingress: { rateBps: 6e6 } } },
    });
  });

  // the same reader as the pod-wide keys: a sample of the boundaries
  const values: Array<[string, number]> = [
    ['1k', 1000],
    ['1.5G', 1.5e9],
    ['1Gi', 2 ** 30],
    ['999.5', 1000],
    ['1P', 1e15],
  ];
  it.each(values)('bandwidth %j -> %d bit/s', (value, rateBps) => {
    expect(parseAnnotations({ [N1_IN]: value })).toEqual({ perInterface: { net1: { ingress: { rateBps } } } });
  });
});

describe('per-interface: rejections', () => {
  const badValues: Array<[string, string, string]> = [
    [N1_EG, '10 M', `not a Kubernetes quantity; ${BW_EXAMPLE}`],
    [N1_EG, '10Mbit', `not a Kubernetes quantity; ${BW_EXAMPLE}`],
    [N1_IN, '-5M', `negative; ${BW_EXAMPLE}`],
    [N1_IN, '999', `below the minimum of 1k bit/s; ${BW_EXAMPLE}`],
    [N1_EG, '10m', `below the minimum of 1k bit/s (a lowercase "m" means milli); ${BW_EXAMPLE}`],
    [N1_EG, '1Pi', `above the maximum of 1P bit/s; ${BW_EXAMPLE}`],
    [N1_EG_BURST, '2MB', `not a Kubernetes quantity; ${BURST_EXAMPLE}`],
    [N1_IN_BURST, '999', `below the minimum of 1k bits; ${BURST_EXAMPLE}`],
    [N1_IN_BURST, '64m', `below the minimum of 1k bits (a lowercase "m" means milli); ${BURST_EXAMPLE}`],
    [N1_EG_BURST, '1Pi', `above the maximum of 1P bits; ${BURST_EXAMPLE}`],
  ];
  it.each(badValues)('%s=%j', (k, value, why) => {
    const others: Record<string, string> = k.endsWith('burst') ? { [EG]: '10M', [IN]: '10M' } : {};
    expect(rejection({ ...others, [k]: value })).toBe(`invalid annotation ${k}=${JSON.stringify(value)}: ${why}`);
  });

  const badSuffixes: Array<[string, string]> = [
    ['net1.egress-bandwith', 'egress-bandwith'],
    ['net1.bandwidth', 'bandwidth'],
    ['net1.Egress-bandwidth', 'Egress-bandwidth'],
    ['net1.queue-latency', 'queue-latency'], // pod-wide only
    ['net1.interfaces', 'interfaces'],
    ['net1.', ''],
    ['net1.egress-bandwidth.x', 'x'],
  ];
  it.each(badSuffixes)('unknown suffix: netqos.io/%s', (rest, suffix) => {
    expect(rejection({ [EG]: '10M', [`netqos.io/${rest}`]: '5M' })).toBe(
      `invalid annotation netqos.io/${rest}="5M": unknown per-interface key ".${suffix}"; ` +
        `the known ones are ${KNOWN_SUFFIXES}, e.g. netqos.io/net1.ingress-bandwidth="10M"`,
    );
  });

  const badNames: Array<[string, string]> = [
    ['', 'no interface named'],
    ['abcdefghijklmnop', '"abcdefghijklmnop" is longer than 15 bytes'],
    ['ééééééééé', '"ééééééééé" is longer than 15 bytes'],
    ['.', '"." is not an interface name'],
    ['..', '".." is not an interface name'],
    ['eth0:1', '"eth0:1" contains ":"'],
    ['a/b', '"a/b" contains "/"'],
    ['eth 0', '"eth 0" contains whitespace or a control character'],
  ];
  it.each(badNames)('bad interface name %j', (ifname, why) => {
    const k = key(ifname, 'egress-bandwidth');
    expect(rejection({ [k]: '5M' })).toBe(
      `invalid annotation ${k}="5M": the interface name in the key is wrong: ${why}; ` +
        'name one such as net1, e.g. netqos.io/net1.ingress-bandwidth="10M"',
    );
  });

  it('a control character in the name keeps the message on one line (key shown escaped)', () => {
    const k = key('eth\n0', 'egress-bandwidth');
    expect(rejection({ [k]: '5M' })).toBe(
      `invalid annotation "netqos.io/eth\\n0.egress-bandwidth"="5M": the interface name in the key is wrong: ` +
        '"eth\\n0" contains whitespace or a control character; name one such as net1, e.g. netqos.io/net1.ingress-bandwidth="10M"',
    );
  });

  it('a burst with no rate for its direction, neither per interface nor pod-wide', () => {
    expect(rejection({ [N1_EG_BURST]: '1M' })).toBe(
      `invalid annotation ${N1_EG_BURST}="1M": a burst needs a rate: ${N1_EG} or ${EG}; add one, e.g. ${N1_EG}="10M"`,
    );
    // the other direction's rate does not count
    expect(rejection({ [IN]: '10M', [N1_EG]: '5M', [N1_IN_BURST]: '1M', [key('net2', 'egress-burst')]: '1M' })).toBe(
      `invalid annotation netqos.io/net2.egress-burst="1M": a burst needs a rate: netqos.io/net2.egress-bandwidth or ${EG}; add one, e.g. netqos.io/net2.egress-bandwidth="10M"`,
    );
  });

  it('a pod-wide burst still needs the pod-wide rate, even when interfaces have their own', () => {
    expect(rejection({ [N1_EG]: '5M', [EG_BURST]: '1M' })).toBe(
      `invalid annotation ${EG_BURST}="1M": a burst needs ${EG} on the same container; add it, e.g. ${EG}="10M"`,
    );
  });

  it('an override for an interface netqos.io/interfaces does not list', () => {
    expect(rejection({ [EG]: '10M', [IFACES]: 'eth0', [N1_EG]: '5M' })).toBe(
      `invalid annotation ${N1_EG}="5M": ${IFACES}="eth0" does not list net1, so net1 is never shaped; add it there or drop this key`,
    );
  });

  it('a value in the CRI-O blob that is not a string', () => {
    expect(rejection({ [CRIO]: JSON.stringify({ [N1_EG]: 5_000_000 }) })).toBe(
      `invalid annotation ${N1_EG}=5000000: not a string; ${BW_EXAMPLE}`,
    );
  });

  it('key names are checked before any value: a misspelt key explains the rest', () => {
    const typo = 'netqos.io/net1.egress-brust';
    const message = rejection({ [EG]: '10 M', [N1_IN]: 'x', [typo]: '1M' });
    expect(message).toMatch(new RegExp(`^invalid annotation ${typo.replace('.', '\\.')}="1M": unknown per-interface key`));
  });

  it('pod-wide values are checked before per-interface ones; per-interface keys in sorted order', () => {
    expect(rejection({ [N1_EG]: 'x', [EG]: '10 M' })).toMatch(/^invalid annotation kubernetes\.io\/egress-bandwidth="10 M"/);
    expect(rejection({ [key('net2', 'egress-bandwidth')]: 'y', [N1_IN]: 'x' })).toMatch(
      /^invalid annotation netqos\.io\/net1\.ingress-bandwidth="x"/,
    );
  });

  it('a dotless misspelling is still an unknown pod-wide key, and the message lists the per-interface form', () => {
    expect(rejection({ 'netqos.io/net1-egress-bandwidth': '5M' })).toBe(
      'invalid annotation netqos.io/net1-egress-bandwidth="5M": unknown netqos.io key; the known ones are ' +
        'netqos.io/ingress-burst, netqos.io/egress-burst, netqos.io/queue-latency, netqos.io/interfaces, ' +
        'netqos.io/ingress-classes, netqos.io/egress-classes, netqos.io/unshaped-subnets, ' +
        `and per interface ${KNOWN_SUFFIXES}`,
    );
  });
});
