/**
 * netqos CLI argument parsing and validation: every rejection is one line naming the flag, the
 * value and a valid example (or the usage), with code INVALID_ARGUMENT (exit 2).
 */
import { describe, expect, it } from 'vitest';
import { NetqosError } from '../../src/domain/errors.js';
import { readApplyFlags } from '../../src/cli/apply-flags.js';
import { parseCommandArgs, type CommandSpec } from '../../src/cli/args.js';
import { readSeconds } from '../../src/cli/demo.js';
import { apply } from '../../src/cli/apply.js';
import { demo } from '../../src/cli/demo.js';
import { status } from '../../src/cli/status.js';
import { parseTarget, podmanReason } from '../../src/cli/target.js';

/** the error fn throws, checked to be a one-line INVALID_ARGUMENT */
function rejection(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(NetqosError);
    expect((e as NetqosError).code).toBe('INVALID_ARGUMENT');
    expect((e as Error).message).not.toContain('\n');
    return (e as Error).message;
  }
  throw new Error('expected a rejection');
}

const applyArgs = (argv: string[]) => parseCommandArgs(apply.spec, argv);
const APPLY_USAGE = `; usage: ${apply.spec.usage}`;

describe('parseCommandArgs', () => {
  it.each([
    [['--pid', '7', '--json'], { pid: '7', json: true }, []],
    [['c1', '--json'], { json: true }, ['c1']],
    [['--netns=/run/netns/x'], { netns: '/run/netns/x' }, []],
    [['--', '--odd-name'], {}, ['--odd-name']],
    [['-h'], { help: true }, []],
    // --help wins over anything else wrong with the positionals
    [['a', 'b', '--help'], { help: true }, ['a', 'b']],
  ])('status %j', (argv, values, positionals) => {
    expect(parseCommandArgs(status.spec, argv)).toEqual({ values, positionals });
  });

  it.each([
    [['--bogus'], 'unknown option --bogus'],
    [['-x'], 'unknown option -x'],
    [['--json=yes'], 'option --json takes no value'],
    [['--pid'], 'option --pid needs a value'],
    [['--pid', '--json'], 'option --pid needs a value, got the option-like "--json" (write --pid=--json if that is the value)'],
    [['--pid', '1', '--pid', '2'], 'option --pid given twice'],
    [['c1', 'c2'], 'unexpected argument "c2"'],
  ])('status %j -> %s', (argv, message) => {
    expect(rejection(() => parseCommandArgs(status.spec, argv))).toBe(`${message}; usage: ${status.spec.usage}`);
  });

  it('a negative-looking value needs the = form, which then reaches the validator', () => {
    expect(rejection(() => applyArgs(['--pid', '1', '--egress', '-5M']))).toMatch(/^option --egress needs a value, got the option-like "-5M"/);
    const args = applyArgs(['--pid', '1', '--egress=-5M']);
    expect(rejection(() => readApplyFlags(apply.spec, args))).toBe(
      'invalid --egress "-5M": negative; use a value such as "10M" (10 Mbit/s) or "1Gi"',
    );
  });
});

describe('readApplyFlags', () => {
  const RATE = 'use a value such as "10M" (10 Mbit/s) or "1Gi"';
  const BURST = 'use a value in bits such as "100k" or "1M" (125 kB)';
  const LATENCY = 'use a duration from 100us to 1s such as "5ms" or "500us"';
  const IFACES = 'use interface names separated by commas such as "eth0" or "eth0,net1"';

  it.each([
    [['--egress', '10 M'], `invalid --egress "10 M": not a Kubernetes quantity; ${RATE}`],
    [['--egress', '10Mbit'], `invalid --egress "10Mbit": not a Kubernetes quantity; ${RATE}`],
    [['--egress', '10m'], `invalid --egress "10m": below the minimum of 1k bit/s (a lowercase "m" means milli); ${RATE}`],
    [['--ingress', '999'], `invalid --ingress "999": below the minimum of 1k bit/s; ${RATE}`],
    [['--ingress', '2P'], `invalid --ingress "2P": above the maximum of 1P bit/s; ${RATE}`],
    [['--egress', ''], `invalid --egress "": not a Kubernetes quantity; ${RATE}`],
    [['--egress', '10M', '--egress-burst', 'lots'], `invalid --egress-burst "lots": not a Kubernetes quantity; ${BURST}`],
    [['--ingress', '10M', '--ingress-burst', '10'], `invalid --ingress-burst "10": below the minimum of 1k bits; ${BURST}`],
    [['--egress', '10M', '--queue-latency', '5'], `invalid --queue-latency "5": a duration needs a unit; ${LATENCY}`],
    [['--egress', '10M', '--queue-latency', '2s'], `invalid --queue-latency "2s": above the maximum of 1s; ${LATENCY}`],
    [['--egress', '10M', '--queue-latency', '50us'], `invalid --queue-latency "50us": below the minimum of 100us; ${LATENCY}`],
    [['--egress', '10M', '--interfaces', 'eth0,,eth1'], `invalid --interfaces "eth0,,eth1": empty name in the list; ${IFACES}`],
    [['--egress', '10M', '--interfaces', 'a/b'], `invalid --interfaces "a/b": "a/b" contains "/"; ${IFACES}`],
    [['--egress', '10M', '--interfaces', 'eth0,eth0'], `invalid --interfaces "eth0,eth0": "eth0" is listed twice; ${IFACES}`],
    [['--egress', '10M', '--interfaces', 'a-very-long-interface'], `invalid --interfaces "a-very-long-interface": "a-very-long-interface" is longer than 15 bytes; ${IFACES}`],
    [[], `give --egress and/or --ingress (to unshape, use netqos remove)${APPLY_USAGE}`],
    [['--queue-latency', '5ms'], `give --egress and/or --ingress (to unshape, use netqos remove)${APPLY_USAGE}`],
    [['--egress-burst', '100k'], `--egress-burst needs --egress (a burst belongs to a rate), e.g. --egress 10M --egress-burst 100k${APPLY_USAGE}`],
    [['--egress', '10M', '--ingress-burst', '100k'], `--ingress-burst needs --ingress (a burst belongs to a rate), e.g. --ingress 10M --ingress-burst 100k${APPLY_USAGE}`],
  ])('%j -> %s', (argv, message) => {
    const args = applyArgs(['--pid', '1', ...argv]);
    expect(rejection(() => readApplyFlags(apply.spec, args))).toBe(message);
  });

  it.each([
    [['--egress', '10M'], { egress: { rateBps: 10e6 } }],
    [['--ingress', '1Gi'], { ingress: { rateBps: 2 ** 30 } }],
    [['--egress', '1.5k', '--ingress', '20M'], { egress: { rateBps: 1500 }, ingress: { rateBps: 20e6 } }],
    [['--egress=10M', '--egress-burst=100k'], { egress: { rateBps: 10e6, burstBits: 100e3 } }],
    [
      ['--ingress', '20M', '--ingress-burst', '1Mi', '--queue-latency', '2.5ms', '--interfaces', 'eth0,net1'],
      { ingress: { rateBps: 20e6, burstBits: 2 ** 20 }, queueLatencyUs: 2500, interfaces: ['eth0', 'net1'] },
    ],
  ])('%j -> %j', (argv, spec) => {
    expect(readApplyFlags(apply.spec, applyArgs(['--pid', '1', ...argv]))).toEqual(spec);
  });
});

describe('parseTarget', () => {
  const spec: CommandSpec = status.spec;
  const target = (argv: string[]) => parseTarget(spec, parseCommandArgs(spec, argv));
  const usage = `; usage: ${spec.usage}`;

  it.each([
    [['--pid', '1234'], { pid: 1234 }],
    [['--netns', '/run/netns/blue'], { path: '/run/netns/blue' }],
    [['my-app_1.web'], { container: 'my-app_1.web' }],
    [['3f2a9c0d1e7b'], { container: '3f2a9c0d1e7b' }],
  ])('%j -> %j', (argv, want) => {
    expect(target(argv)).toEqual(want);
  });

  it.each([
    [[], `no target: name a container, or give --pid or --netns${usage}`],
    [['c1', '--pid', '5'], `more than one target: give one of a container, --pid and --netns${usage}`],
    [['--pid', '5', '--netns', '/run/netns/x'], `more than one target: give one of a container, --pid and --netns${usage}`],
    [['--pid', 'abc'], 'invalid --pid "abc": not a process id; use the PID of a process in the namespace, such as "1234"'],
    [['--pid', '0'], 'invalid --pid "0": not a process id; use the PID of a process in the namespace, such as "1234"'],
    [['--pid', '12x'], 'invalid --pid "12x": not a process id; use the PID of a process in the namespace, such as "1234"'],
    [['--pid', '99999999999'], 'invalid --pid "99999999999": not a process id; use the PID of a process in the namespace, such as "1234"'],
    [['--netns', 'run/netns/x'], 'invalid --netns "run/netns/x": not an absolute path; use a namespace file such as "/run/netns/blue" or "/proc/1234/ns/net"'],
    [['no such/name'], `"no such/name" is not a container name or id${usage}`],
  ])('%j -> %s', (argv, message) => {
    expect(rejection(() => target(argv))).toBe(message);
  });
});

describe('podmanReason', () => {
  it.each([
    ['Error: inspecting object: no such container foo\n', 'inspecting object: no such container foo'],
    [
      'time="2026-11-21T10:53:10Z" level=error msg="stat /tmp/x.conf: no such file or directory"\n',
      'stat /tmp/x.conf: no such file or directory',
    ],
    ['time="t" level=warning msg="a \\"quoted\\" word"\nError: the real reason\n', 'the real reason'],
    ['', ''],
  ])('%j -> %j', (stderr, reason) => {
    expect(podmanReason(stderr)).toBe(reason);
  });
});

describe('demo --seconds', () => {
  const seconds = (argv: string[]) => readSeconds(parseCommandArgs(demo.spec, argv));
  it('defaults to 4 and takes 2..60', () => {
    expect(seconds([])).toBe(4);
    expect(seconds(['--seconds', '2'])).toBe(2);
    expect(seconds(['--seconds=60'])).toBe(60);
  });
  it.each(['1', '61', '2.5', 'x', ''])('rejects %j', (v) => {
    expect(rejection(() => seconds(['--seconds', v]))).toBe(
      `invalid --seconds ${JSON.stringify(v)}: not a whole number of seconds from 2 to 60; use a value such as "4"`,
    );
  });
});
