/**
 * The NRI plugin's pure parts: the event mask, where a pod's namespace is, the config merge
 * and the daemon's arguments.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/domain/config.js';
import { NetqosError } from '../../src/domain/errors.js';
import { parseDaemonArgs } from '../../src/nri/args.js';
import { DROP_IN_LABEL, effectiveConfig } from '../../src/nri/config.js';
import { nextBackoff } from '../../src/nri/daemon.js';
import { subscriptionMask, validEvents } from '../../src/nri/events.js';
import { podLabel, podNetnsRef } from '../../src/nri/pod-netns.js';

describe('event mask', () => {
  const fn = (): Promise<void> => Promise.resolve();

  it('is derived from the handlers implemented', () => {
    expect(subscriptionMask({ runPodSandbox: fn, stopPodSandbox: fn, removePodSandbox: fn }, 0x7ff)).toBe(0x7);
    expect(subscriptionMask({ runPodSandbox: fn }, 0x7ff)).toBe(0x1);
    expect(subscriptionMask({ stopPodSandbox: fn, removePodSandbox: fn, synchronize: fn }, 0x7ff)).toBe(0x6);
    expect(subscriptionMask({}, 0x7ff)).toBe(0);
  });

  it('never holds a bit the runtime rejects', () => {
    expect(subscriptionMask({ runPodSandbox: fn }, 0)).toBe(0);
  });

  it.each([
    ['', 0x7ff], // containerd 1.7 to 2.2 send no NRI version
    ['v0.8.0', 0x7ff],
    ['v0.9.1', 0x7ff],
    ['v0.10.0', 0x3fff],
    ['v0.12.2', 0x3fff],
    ['0.12.0', 0x3fff],
    ['v1.0.0', 0x3fff],
    ['unknown', 0x7ff],
  ])('NRI version %j accepts 0x%s', (version, mask) => {
    expect(validEvents(version)).toBe(mask);
  });
});

describe('podNetnsRef', () => {
  const ns = (type: string, path = '') => ({ type, path });
  it.each([
    ['the network entry\'s path', [ns('pid'), ns('network', '/var/run/netns/cni-1')], 77, { path: '/var/run/netns/cni-1' }],
    ['the pid when the network entry has no path', [ns('network')], 77, { pid: 77 }],
    ['the pid when there is no network entry (host network: refused later)', [ns('pid'), ns('ipc')], 77, { pid: 77 }],
    ['nothing on containerd 1.7 stop/remove', [], 0, undefined],
  ])('takes %s', (_what, linuxNamespaces, pid, want) => {
    expect(podNetnsRef({ linuxNamespaces, pid })).toEqual(want);
  });

  it('labels pods as namespace/name (id)', () => {
    expect(podLabel({ id: '4dd3a29745edc7be7af2987bbd8', name: 'web', namespace: 'prod' })).toBe('prod/web (4dd3a29745ed)');
    expect(podLabel({ id: '4dd3a29745edc7be7af2987bbd8', name: '', namespace: '' })).toBe('4dd3a29745ed');
  });
});

describe('effectiveConfig', () => {
  const FILE = '/etc/netqos/config.json';

  it('is the defaults without file and drop-in', () => {
    expect(effectiveConfig(undefined, FILE, '')).toEqual({ config: DEFAULT_CONFIG, problems: [] });
  });

  it('lets the drop-in override the file field by field, log fields too', () => {
    const file = JSON.stringify({ onError: 'warn', queueLatency: '2ms', log: { file: '/var/log/a.log', level: 'debug' } });
    const { config, problems } = effectiveConfig(file, FILE, '{"onError": "fail", "log": {"level": "warn"}}');
    expect(problems).toEqual([]);
    expect(config).toEqual({ ...DEFAULT_CONFIG, onError: 'fail', queueLatencyUs: 2000, log: { file: '/var/log/a.log', level: 'warn' } });
  });

  it('ignores a bad drop-in, keeps the file, and says why', () => {
    const { config, problems } = effectiveConfig('{"onError": "warn"}', FILE, '{"onErorr": "fail"}');
    expect(config.onError).toBe('warn');
    expect(problems).toEqual([
      `invalid config ${DROP_IN_LABEL}: onErorr="fail": unknown field; the fields are onError, log, queueLatency, hookTimeoutMs, vfEgress, sriovStateDir, vethShaping (ignored)`,
    ]);
  });

  it('ignores a bad file, keeps the drop-in', () => {
    const { config, problems } = effectiveConfig('{not json', FILE, '{"onError": "warn"}');
    expect(config.onError).toBe('warn');
    expect(problems[0]).toMatch(/^invalid config \/etc\/netqos\/config.json: not valid JSON/);
  });
});

describe('parseDaemonArgs', () => {
  it('defaults to the external daemon on /var/run/nri/nri.sock, index 10', () => {
    expect(parseDaemonArgs([], {})).toEqual({
      connection: { mode: 'external', socketPath: '/var/run/nri/nri.sock' },
      name: 'netqos',
      idx: '10',
      configPath: '/etc/netqos/config.json',
      lockPath: '/run/netqos/nri.lock',
      apiPath: '/run/netqos/api.sock',
      stateDir: '/var/lib/netqos',
      help: false,
    });
  });

  it('takes --socket, --index, --lock, --config and NETQOS_CONFIG', () => {
    const a = parseDaemonArgs(['--socket', '/run/x.sock', '--index=20', '--lock', '/tmp/l'], { NETQOS_CONFIG: '/tmp/c.json' });
    expect(a).toMatchObject({ connection: { mode: 'external', socketPath: '/run/x.sock' }, idx: '20', lockPath: '/tmp/l', configPath: '/tmp/c.json' });
  });

  it('takes --api and --state-dir (absolute paths only)', () => {
    const a = parseDaemonArgs(['--api', '/tmp/nqt-x/api.sock', '--state-dir', '/tmp/nqt-x/state'], {});
    expect(a).toMatchObject({ apiPath: '/tmp/nqt-x/api.sock', stateDir: '/tmp/nqt-x/state' });
    expect(() => parseDaemonArgs(['--state-dir', 'state'], {})).toThrow('invalid --state-dir "state": not an absolute path; use a path such as /var/lib/netqos');
  });

  it('is pre-installed when the runtime passes NRI_PLUGIN_SOCKET, with its name and index', () => {
    const a = parseDaemonArgs([], { NRI_PLUGIN_SOCKET: '3', NRI_PLUGIN_NAME: 'netqos', NRI_PLUGIN_IDX: '15' });
    expect(a).toMatchObject({ connection: { mode: 'pre-installed', fd: 3 }, name: 'netqos', idx: '15' });
  });

  it.each([
    [['--index', '7'], {}, 'invalid --index "7": not two digits; use a value such as 10 (plugins are called in ascending order)'],
    [['--socket', 'nri.sock'], {}, 'invalid --socket "nri.sock": not an absolute path; use a path such as /var/run/nri/nri.sock'],
    [['--bogus'], {}, 'unknown option --bogus; usage: netqos-nri [--socket PATH] [--index NN] [--config PATH] [--lock PATH] [--api PATH] [--state-dir DIR]'],
    [[], { NRI_PLUGIN_SOCKET: 'x' }, /^invalid NRI_PLUGIN_SOCKET "x": not an inherited file descriptor/],
    [['--socket', '/s'], { NRI_PLUGIN_SOCKET: '3' }, /^NRI_PLUGIN_SOCKET is set \(launched by the runtime\): --socket and --index do not apply/],
    [[], { NRI_PLUGIN_SOCKET: '3', NRI_PLUGIN_IDX: '100' }, 'NRI plugin index "100": use two digits, e.g. "10"'],
  ])('rejects %j %j', (argv, env, message) => {
    let err: unknown;
    try {
      parseDaemonArgs(argv, env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetqosError);
    if (typeof message === 'string') expect((err as Error).message).toBe(message);
    else expect((err as Error).message).toMatch(message);
  });
});

describe('reconnect backoff', () => {
  it('doubles from 0.5 s up to 10 s', () => {
    const seq = [500];
    for (let i = 0; i < 7; i++) seq.push(nextBackoff(seq.at(-1)!));
    expect(seq).toEqual([500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
  });
});
