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

const BW_EXAMPLE = 'use a value such as "10M" (10 Mbit/s) or "1Gi"';
const BURST_EXAMPLE = 'use a value in bits such as "1M" (125 kB) or "512Ki"';
const LATENCY_EXAMPLE = 'use a duration from 100us to 1s such as "5ms" or "500us"';
const IFACES_EXAMPLE = 'use interface names separated by commas such as "eth0" or "eth0,net1"';

/** the message parseAnnotations throws, checking it is a one-line INVALID_ANNOTATION */
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

describe('parseAnnotations: nothing to do', () => {
  const untouched: Array<[string, Record<string, string>]> = [
    ['no annotations', {}],
    ['unrelated annotations', { 'io.kubernetes.pod.name': 'web', 'kubernetes.io/config.seen': 'x' }],
    ['a similar but foreign key', { 'example.com/egress-bandwidth': '10M', 'netqos.iox/a': '1' }],
    ['a CRI-O blob without our keys', { [CRIO]: JSON.stringify({ 'io.kubernetes.pod.uid': 'u' }) }],
    ['an unparseable CRI-O blob', { [CRIO]: '{not json netqos.io/egress-burst' }],
    ['a CRI-O blob that is an array', { [CRIO]: `["${EG}", "10M"]` }],
    ['a CRI-O blob that is null', { [CRIO]: 'null' }],
  ];
  it.each(untouched)('%s -> null', (_, annotations) => {
    expect(parseAnnotations(annotations)).toBeNull();
  });
});

describe('parseAnnotations: bandwidth values', () => {
  // [value, rateBps]
  const accepted: Array<[string, number]> = [
    ['1k', 1000], // the minimum, inclusive
    ['1000', 1000],
    ['10M', 10_000_000],
    ['1.5G', 1_500_000_000],
    ['1Gi', 1_073_741_824],
    ['0.5Mi', 524_288],
    ['1e3', 1000],
    ['1E6', 1_000_000],
    ['+10M', 10_000_000],
    ['1000.5', 1001], // Value() rounds up
    ['999.5', 1000], // rounds up to the minimum: accepted, as containerd does
    ['1P', 1e15], // the maximum, inclusive
    ['1000000000000000', 1e15],
    ['1000000k', 1e9],
  ];
  it.each(accepted)('egress %j -> %d bit/s', (value, rateBps) => {
    expect(parseAnnotations({ [EG]: value })).toEqual({ egress: { rateBps } });
  });

  const rejected: Array<[string, string]> = [
    ['', 'not a Kubernetes quantity'],
    [' 10M', 'not a Kubernetes quantity'],
    ['10 M', 'not a Kubernetes quantity'],
    ['10Mbit', 'not a Kubernetes quantity'],
    ['10mb', 'not a Kubernetes quantity'],
    ['10Mbps', 'not a Kubernetes quantity'],
    ['1K', 'not a Kubernetes quantity'],
    ['unlimited', 'not a Kubernetes quantity'],
    ['-10M', 'negative'],
    ['999', 'below the minimum of 1k bit/s'],
    ['0', 'below the minimum of 1k bit/s'],
    ['-0', 'below the minimum of 1k bit/s'],
    ['0.999k', 'below the minimum of 1k bit/s'],
    ['10m', 'below the minimum of 1k bit/s (a lowercase "m" means milli)'],
    ['100000m', 'below the minimum of 1k bit/s (a lowercase "m" means milli)'],
    ['1.0000001P', 'above the maximum of 1P bit/s'],
    ['1000000000000000.01', 'above the maximum of 1P bit/s'], // rounds up past 1P
    ['1000000000000001', 'above the maximum of 1P bit/s'],
    ['1Pi', 'above the maximum of 1P bit/s'],
    ['1E', 'above the maximum of 1P bit/s'],
    ['1e400', 'above the maximum of 1P bit/s'],
  ];
  it.each(rejected)('egress %j: %s', (value, why) => {
    expect(rejection({ [EG]: value })).toBe(
      `invalid annotation ${EG}=${JSON.stringify(value)}: ${why}; ${BW_EXAMPLE}`,
    );
  });

  it('names the ingress annotation when that one is wrong', () => {
    expect(rejection({ [EG]: '10M', [IN]: '500' })).toBe(
      `invalid annotation ${IN}="500": below the minimum of 1k bit/s; ${BW_EXAMPLE}`,
    );
  });

  it('reports ingress first when both are wrong, whatever the order of the keys', () => {
    const message = `invalid annotation ${IN}="1x": not a Kubernetes quantity; ${BW_EXAMPLE}`;
    expect(rejection({ [EG]: '1y', [IN]: '1x' })).toBe(message);
    expect(rejection({ [IN]: '1x', [EG]: '1y' })).toBe(message);
    // the same with a netqos.io key present (the schema path rather than the bandwidth-only one)
    expect(rejection({ [EG]: '1y', [IN]: '1x', [LATENCY]: '5ms' })).toBe(message);
  });

  it.each(rejected)('gives the same message for %j when netqos.io keys are present too', (value, why) => {
    expect(rejection({ [EG]: value, [LATENCY]: '5ms', [IFACES]: 'eth0' })).toBe(
      `invalid annotation ${EG}=${JSON.stringify(value)}: ${why}; ${BW_EXAMPLE}`,
    );
  });

  it('reads both directions independently', () => {
    expect(parseAnnotations({ [IN]: '20M', [EG]: '1Gi' })).toEqual({
      ingress: { rateBps: 20_000_000 },
      egress: { rateBps: 1_073_741_824 },
    });
    expect(parseAnnotations({ [IN]: '5M' })).toEqual({ ingress: { rateBps: 5_000_000 } });
  });

  it('keeps a huge or odd value on one line and short', () => {
    expect(rejection({ [EG]: '10M\nrm -rf /' })).toBe(
      `invalid annotation ${EG}="10M\\nrm -rf /": not a Kubernetes quantity; ${BW_EXAMPLE}`,
    );
    const message = rejection({ [EG]: '9'.repeat(5000) });
    expect(message).toBe(
      `invalid annotation ${EG}="${'9'.repeat(77)}...": above the maximum of 1P bit/s; ${BW_EXAMPLE}`,
    );
  });
});

describe('parseAnnotations: bursts', () => {
  it('attaches a burst in bits to its own direction', () => {
    expect(parseAnnotations({ [EG]: '10M', [EG_BURST]: '2M' })).toEqual({
      egress: { rateBps: 10_000_000, burstBits: 2_000_000 },
    });
    expect(parseAnnotations({ [IN]: '10M', [EG]: '10M', [IN_BURST]: '512Ki' })).toEqual({
      ingress: { rateBps: 10_000_000, burstBits: 524_288 },
      egress: { rateBps: 10_000_000 },
    });
    expect(parseAnnotations({ [IN]: '10M', [IN_BURST]: '1k' })).toEqual({
      ingress: { rateBps: 10_000_000, burstBits: 1000 },
    });
    expect(parseAnnotations({ [IN]: '10M', [IN_BURST]: '1P' })).toEqual({
      ingress: { rateBps: 10_000_000, burstBits: 1e15 },
    });
  });

  const rejected: Array<[string, string]> = [
    ['2MB', 'not a Kubernetes quantity'],
    ['999', 'below the minimum of 1k bits'],
    ['64m', 'below the minimum of 1k bits (a lowercase "m" means milli)'],
    ['1Pi', 'above the maximum of 1P bits'],
    ['-1M', 'negative'],
  ];
  it.each(rejected)('burst %j: %s', (value, why) => {
    expect(rejection({ [EG]: '10M', [EG_BURST]: value })).toBe(
      `invalid annotation ${EG_BURST}=${JSON.stringify(value)}: ${why}; ${BURST_EXAMPLE}`,
    );
  });

  it('rejects a burst for a direction without a bandwidth', () => {
    expect(rejection({ [EG]: '10M', [IN_BURST]: '1M' })).toBe(
      `invalid annotation ${IN_BURST}="1M": a burst needs ${IN} on the same container; add it, e.g. ${IN}="10M"`,
    );
    expect(rejection({ [IN]: '10M', [EG_BURST]: '1M' })).toBe(
      `invalid annotation ${EG_BURST}="1M": a burst needs ${EG} on the same container; add it, e.g. ${EG}="10M"`,
    );
  });

  it('rejects a burst with no bandwidth at all, naming the missing annotation', () => {
    expect(rejection({ [EG_BURST]: '1M' })).toBe(
      `invalid annotation ${EG_BURST}="1M": a burst needs ${EG} on the same container; add it, e.g. ${EG}="10M"`,
    );
  });
});

describe('parseAnnotations: queue latency', () => {
  const accepted: Array<[string, number]> = [
    ['100us', 100], // the minimum, inclusive
    ['5ms', 5000],
    ['1.5ms', 1500],
    ['100.4us', 100], // whole microseconds
    ['0.1ms', 100],
    ['1s', 1_000_000], // the maximum, inclusive
    ['1000ms', 1_000_000],
  ];
  it.each(accepted)('%j -> %d us', (value, us) => {
    expect(parseAnnotations({ [EG]: '10M', [LATENCY]: value })).toEqual({
      egress: { rateBps: 10_000_000 },
      queueLatencyUs: us,
    });
  });

  const rejected: Array<[string, string]> = [
    ['5', 'a duration needs a unit'],
    ['0.5', 'a duration needs a unit'],
    ['5 ms', 'not a duration'],
    ['5msec', 'not a duration'],
    ['1m', 'not a duration'],
    ['', 'not a duration'],
    ['-5ms', 'negative'],
    ['99us', 'below the minimum of 100us'],
    ['0s', 'below the minimum of 100us'],
    ['1.001s', 'above the maximum of 1s'],
    ['2s', 'above the maximum of 1s'],
  ];
  it.each(rejected)('%j: %s', (value, why) => {
    expect(rejection({ [EG]: '10M', [LATENCY]: value })).toBe(
      `invalid annotation ${LATENCY}=${JSON.stringify(value)}: ${why}; ${LATENCY_EXAMPLE}`,
    );
  });
});

describe('parseAnnotations: interfaces', () => {
  const accepted: Array<[string, string[]]> = [
    ['eth0', ['eth0']],
    ['eth0,net1', ['eth0', 'net1']],
    [' eth0 , net1 ', ['eth0', 'net1']],
    ['a', ['a']],
    ['abcdefghijklmno', ['abcdefghijklmno']], // 15 bytes: the kernel's limit
    ['vlan.100,br-x_y@z', ['vlan.100', 'br-x_y@z']],
    ['...', ['...']], // only "." and ".." are reserved
  ];
  it.each(accepted)('%j -> %j', (value, interfaces) => {
    expect(parseAnnotations({ [EG]: '10M', [IFACES]: value })).toEqual({
      egress: { rateBps: 10_000_000 },
      interfaces,
    });
  });

  const rejected: Array<[string, string]> = [
    ['', 'no interface named'],
    ['   ', 'no interface named'],
    [',', 'empty name in the list'],
    ['eth0,', 'empty name in the list'],
    ['eth0,,net1', 'empty name in the list'],
    ['abcdefghijklmnop', '"abcdefghijklmnop" is longer than 15 bytes'],
    ['ééééééééé', '"ééééééééé" is longer than 15 bytes'], // 18 bytes in UTF-8
    ['.', '"." is not an interface name'],
    ['eth0,..', '".." is not an interface name'],
    ['a/b', '"a/b" contains "/"'],
    ['eth0:1', '"eth0:1" contains ":"'],
    ['eth 0', '"eth 0" contains whitespace or a control character'],
    ['eth\t0', '"eth\\t0" contains whitespace or a control character'],
    ['eth\u00000', '"eth\\u00000" contains whitespace or a control character'],
    ['eth0,net1,eth0', '"eth0" is listed twice'],
    ['eth0, eth0', '"eth0" is listed twice'],
  ];
  it.each(rejected)('%j: %s', (value, why) => {
    expect(rejection({ [EG]: '10M', [IFACES]: value })).toBe(
      `invalid annotation ${IFACES}=${JSON.stringify(value)}: ${why}; ${IFACES_EXAMPLE}`,
    );
  });
});

describe('parseAnnotations: netqos.io keys', () => {
  it('reads every key together', () => {
    const spec: QosSpec = {
      ingress: { rateBps: 20_000_000, burstBits: 1_000_000 },
      egress: { rateBps: 10_000_000, burstBits: 2_000_000 },
      queueLatencyUs: 2000,
      interfaces: ['eth0', 'net1'],
    };
    expect(
      parseAnnotations({
        [IN]: '20M',
        [EG]: '10M',
        [IN_BURST]: '1M',
        [EG_BURST]: '2M',
        [LATENCY]: '2ms',
        [IFACES]: 'eth0,net1',
        'io.kubernetes.pod.name': 'web',
      }),
    ).toEqual(spec);
  });

  const KNOWN =
    'the known ones are netqos.io/ingress-burst, netqos.io/egress-burst, netqos.io/queue-latency, netqos.io/interfaces, netqos.io/ingress-classes, netqos.io/egress-classes, netqos.io/unshaped-subnets, ' +
    'and per interface netqos.io/<ifname>.ingress-bandwidth, .egress-bandwidth, .ingress-burst, .egress-burst';
  const unknown: Array<[Record<string, string>, string]> = [
    [{ [EG]: '10M', 'netqos.io/egress-brust': '1M' }, `netqos.io/egress-brust="1M"`],
    [{ [EG]: '10M', 'netqos.io/latency': '5ms' }, `netqos.io/latency="5ms"`],
    [{ [EG]: '10M', 'netqos.io/': 'x' }, `netqos.io/="x"`],
    [{ [EG]: '10M', 'netqos.io/Interfaces': 'eth0' }, `netqos.io/Interfaces="eth0"`],
    // a typo without a bandwidth: the typo is the more useful complaint
    [{ 'netqos.io/egres-burst': '1M' }, `netqos.io/egres-burst="1M"`],
    // and it comes before complaints about other values
    [{ [EG]: '10 M', 'netqos.io/x': '1' }, `netqos.io/x="1"`],
  ];
  it.each(unknown)('rejects an unknown key in %j', (annotations, keyValue) => {
    expect(rejection(annotations)).toBe(`invalid annotation ${keyValue}: unknown netqos.io key; ${KNOWN}`);
  });

  const NEED_BANDWIDTH = `netqos.io annotations need a bandwidth annotation; add ${EG} and/or ${IN}, e.g. ${EG}="10M"`;
  it.each([
    [{ [LATENCY]: '5ms' }, `${LATENCY}="5ms"`],
    [{ [IFACES]: 'eth0' }, `${IFACES}="eth0"`],
    [{ [IFACES]: 'eth0', [LATENCY]: '5ms' }, `${LATENCY}="5ms"`],
  ])('rejects netqos.io keys without any bandwidth: %j', (annotations, keyValue) => {
    expect(rejection(annotations)).toBe(`invalid annotation ${keyValue}: ${NEED_BANDWIDTH}`);
  });
});

describe('parseAnnotations: the CRI-O annotations blob', () => {
  const blob = (a: Record<string, unknown>) => JSON.stringify(a);

  it('reads bandwidth from the blob', () => {
    expect(parseAnnotations({ [CRIO]: blob({ [EG]: '10M', 'io.kubernetes.pod.uid': 'u' }) })).toEqual({
      egress: { rateBps: 10_000_000 },
    });
  });

  it('merges the blob with the container annotations', () => {
    expect(
      parseAnnotations({ [IN]: '20M', [CRIO]: blob({ [EG]: '10M', [LATENCY]: '1ms', [IFACES]: 'eth0' }) }),
    ).toEqual({
      ingress: { rateBps: 20_000_000 },
      egress: { rateBps: 10_000_000 },
      queueLatencyUs: 1000,
      interfaces: ['eth0'],
    });
  });

  it('lets a key on the container win over the blob', () => {
    expect(parseAnnotations({ [EG]: '7M', [CRIO]: blob({ [EG]: '10M' }) })).toEqual({
      egress: { rateBps: 7_000_000 },
    });
    // even when the blob's value is the invalid one
    expect(parseAnnotations({ [EG]: '7M', [CRIO]: blob({ [EG]: '10 M' }) })).toEqual({
      egress: { rateBps: 7_000_000 },
    });
  });

  it('rejects the container value that wins even when the blob holds a valid one', () => {
    expect(rejection({ [EG]: '7 M', [CRIO]: blob({ [EG]: '10M' }) })).toBe(
      `invalid annotation ${EG}="7 M": not a Kubernetes quantity; ${BW_EXAMPLE}`,
    );
  });

  it('rejects bad values of our keys in the blob like any annotation', () => {
    expect(rejection({ [CRIO]: blob({ [EG]: '10Mbit' }) })).toBe(
      `invalid annotation ${EG}="10Mbit": not a Kubernetes quantity; ${BW_EXAMPLE}`,
    );
    expect(rejection({ [CRIO]: blob({ [EG]: '10M', 'netqos.io/brust': '1M' }) })).toBe(
      `invalid annotation netqos.io/brust="1M": unknown netqos.io key; the known ones are netqos.io/ingress-burst, netqos.io/egress-burst, netqos.io/queue-latency, netqos.io/interfaces, netqos.io/ingress-classes, netqos.io/egress-classes, netqos.io/unshaped-subnets, and per interface netqos.io/<ifname>.ingress-bandwidth, .egress-bandwidth, .ingress-burst, .egress-burst`,
    );
    expect(rejection({ [EG]: '10M', [CRIO]: blob({ [IN_BURST]: '1M' }) })).toBe(
      `invalid annotation ${IN_BURST}="1M": a burst needs ${IN} on the same container; add it, e.g. ${IN}="10M"`,
    );
  });

  it('rejects a value of ours in the blob that is not a string', () => {
    expect(rejection({ [CRIO]: blob({ [EG]: 10_000_000 }) })).toBe(
      `invalid annotation ${EG}=10000000: not a string; ${BW_EXAMPLE}`,
    );
    expect(rejection({ [EG]: '10M', [CRIO]: blob({ [LATENCY]: null }) })).toBe(
      `invalid annotation ${LATENCY}=null: not a string; ${LATENCY_EXAMPLE}`,
    );
  });

  it('ignores non-string values of keys that are not ours', () => {
    expect(parseAnnotations({ [CRIO]: blob({ [EG]: '1M', other: { nested: true } }) })).toEqual({
      egress: { rateBps: 1_000_000 },
    });
  });

  it('ignores an unparseable blob even when it mentions our keys', () => {
    expect(parseAnnotations({ [EG]: '10M', [CRIO]: `{"${EG}": "5M"` })).toEqual({
      egress: { rateBps: 10_000_000 },
    });
  });

  it('is not fooled by a __proto__ key in the blob', () => {
    const spec = parseAnnotations({ [CRIO]: `{"__proto__": {"${EG}": "1M"}, "${IN}": "2M"}` });
    expect(spec).toEqual({ ingress: { rateBps: 2_000_000 } });
  });
});
