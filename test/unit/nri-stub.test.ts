/**
 * The stub against the fake runtime (test/support/nri-fake-runtime.ts) over a real unix socket:
 * handshake and event order as containerd 2.1.9, 1.7.24 and a NRI 0.12 runtime run them, the
 * captured 2.1.9 bytes replayed as they are, split Synchronize, error replies, deadlines,
 * Unimplemented, and replies larger than one Go read buffer.
 */
import { createConnection } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { NetqosError } from '../../src/domain/errors.js';
import type { Logger } from '../../src/log.js';
import type { ConfigureRequest, PodSandbox } from '../../src/nri/proto.js';
import { checkIdentity, serveStub, type CallInfo, type PluginHandlers, type StubEnd } from '../../src/nri/stub.js';
import { FakeRuntime, goldenFrames, type FakePod, type RuntimeOptions } from '../support/nri-fake-runtime.js';

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** handlers that record what they were called with, in order */
class Recorder implements PluginHandlers {
  readonly calls: string[] = [];
  configured: ConfigureRequest | undefined;
  syncs: PodSandbox[][] = [];
  pods: PodSandbox[] = [];
  failWith: Error | undefined;
  delayMs = 0;

  configure(req: ConfigureRequest): void {
    this.configured = req;
    this.calls.push('configure');
  }
  synchronize(pods: PodSandbox[]): void {
    this.syncs.push(pods);
    this.calls.push(`synchronize ${pods.map((p) => p.name).join(',')}`);
  }
  async runPodSandbox(pod: PodSandbox, call: CallInfo): Promise<void> {
    await this.event('run', pod, call);
  }
  async stopPodSandbox(pod: PodSandbox, call: CallInfo): Promise<void> {
    await this.event('stop', pod, call);
  }
  async removePodSandbox(pod: PodSandbox, call: CallInfo): Promise<void> {
    await this.event('remove', pod, call);
  }
  shutdown(): void {
    this.calls.push('shutdown');
  }
  private async event(kind: string, pod: PodSandbox, call: CallInfo): Promise<void> {
    this.pods.push(pod);
    this.calls.push(`${kind} ${pod.name} via ${call.method}`);
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.failWith) throw this.failWith;
  }
}

let runtimes: FakeRuntime[] = [];
afterEach(async () => {
  await Promise.all(runtimes.map((r) => r.dispose()));
  runtimes = [];
});

async function start(opts: RuntimeOptions, handlers: PluginHandlers = new Recorder()) {
  const runtime = new FakeRuntime(opts);
  runtimes.push(runtime);
  await runtime.listen();
  const next = runtime.nextConnection();
  const socket = createConnection(runtime.socketPath);
  const ended: Promise<StubEnd> = serveStub(socket, handlers, { name: 'netqos', idx: '10', log: quiet });
  const conn = await next;
  return { runtime, conn, ended };
}

const pod = (name: string, extra: Partial<FakePod> = {}): FakePod => ({
  id: `${name}-0123456789abcdef`,
  name,
  namespace: 'nqt-test',
  annotations: { 'kubernetes.io/egress-bandwidth': '10M' },
  netnsPath: `/run/netns/nqt-none-${name}`,
  pid: 4242,
  ips: ['10.250.77.4'],
  ...extra,
});

describe('handshake', () => {
  it.each(['2.1', '1.7', '0.12'] as const)('with a %s runtime: registers, subscribes to the pod events only, synchronizes', async (profile) => {
    const rec = new Recorder();
    const { conn } = await start({ profile, syncPods: [pod('a'), pod('b')] }, rec);
    await conn.ready;
    expect(conn.registered).toEqual({ name: 'netqos', idx: '10' });
    expect(conn.events).toBe(0x7);
    expect(conn.log.slice(0, 3)).toEqual(['register netqos 10', 'configure -> 0x7', 'sync 2 pods']);
    expect(rec.calls).toEqual(['configure', 'synchronize a,b']);
    expect(rec.configured!.runtimeName).toBe('containerd');
    expect(rec.configured!.requestTimeoutMs).toBe(profile === '1.7' ? 0 : 2000);
    expect(rec.syncs[0]![0]!.linuxNamespaces).toContainEqual({ type: 'network', path: '/run/netns/nqt-none-a' });
  });

  it('serves the captured 2.1.9 Configure and Synchronize bytes as they are', async () => {
    const rec = new Recorder();
    const { conn } = await start({ profile: '2.1', golden: true }, rec);
    await conn.ready;
    expect(rec.configured).toMatchObject({ runtimeName: 'containerd', runtimeVersion: '2.1.9+unknown', requestTimeoutMs: 2000 });
    expect(rec.calls).toEqual(['configure', 'synchronize ']);
    // then the captured StateChange requests: RUN, STOP, REMOVE of one pod, stream ids 5, 7, 9
    const events = goldenFrames().filter((f) => f.dir === 'runtime->plugin' && f.conn === 1).slice(2);
    for (const e of events) expect(await conn.replay(e.bytes, 'StateChange')).toMatchObject({ ok: true });
    expect(rec.calls.slice(2)).toEqual([
      'run nlpodgolden via StateChange',
      'stop nlpodgolden via StateChange',
      'remove nlpodgolden via StateChange',
    ]);
    expect(rec.pods[0]!.annotations['kubernetes.io/ingress-bandwidth']).toBe('10M');
  });

  it('gathers a Synchronize split with more, answering the partial ones with more', async () => {
    const rec = new Recorder();
    const pods = ['a', 'b', 'c', 'd', 'e'].map((n) => pod(n));
    const { conn } = await start({ profile: '2.1', syncPods: pods, syncChunk: 2 }, rec);
    await conn.ready;
    expect(conn.log).toContain('sync 2 pods (more)');
    expect(rec.syncs).toHaveLength(1);
    expect(rec.syncs[0]!.map((p) => p.name)).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('a NRI 0.12 runtime may subscribe a plugin to newer events, but we take only what we handle', async () => {
    const { conn } = await start({ profile: '0.12' });
    await conn.ready;
    expect(conn.events).toBe(0x7);
  });

  it.each([
    ['2.1', ['Configure', 'RegisterPlugin reply', 'Synchronize']],
    ['1.7', ['RegisterPlugin reply', 'Configure', 'Synchronize']],
  ] as const)('%s: Configure is served whether it comes before or after the RegisterPlugin reply', async (profile, order) => {
    const { conn } = await start({ profile });
    await conn.ready;
    expect(conn.sent).toEqual(order);
  });
});

describe('pod events', () => {
  it.each(['2.1', '1.7'] as const)('%s: RunPodSandbox, StopPodSandbox, RemovePodSandbox arrive as StateChange, in order', async (profile) => {
    const rec = new Recorder();
    const { conn } = await start({ profile }, rec);
    await conn.ready;
    const p = pod('p1');
    expect(await conn.runPodSandbox(p)).toMatchObject({ ok: true });
    expect(await conn.stopPodSandbox(p)).toMatchObject({ ok: true });
    expect(await conn.removePodSandbox(p)).toMatchObject({ ok: true });
    expect(rec.calls.slice(2)).toEqual(['run p1 via StateChange', 'stop p1 via StateChange', 'remove p1 via StateChange']);
    const [run, stop, remove] = rec.pods;
    expect(run!.pid).toBe(4242);
    expect(run!.ips).toEqual(profile === '2.1' ? ['10.250.77.4'] : []);
    expect(stop!.pid).toBe(0);
    expect(stop!.linuxNamespaces.some((n) => n.type === 'network')).toBe(profile === '2.1');
    expect(remove!.linuxNamespaces).toEqual([]);
  });

  it('0.12: the dedicated calls are used, with metadata and a deadline', async () => {
    const rec = new Recorder();
    const { conn } = await start({ profile: '0.12' }, rec);
    await conn.ready;
    const p = pod('p2');
    await conn.runPodSandbox(p);
    await conn.stopPodSandbox(p);
    await conn.removePodSandbox(p);
    expect(rec.calls.slice(2)).toEqual(['run p2 via RunPodSandbox', 'stop p2 via StopPodSandbox', 'remove p2 via RemovePodSandbox']);
    expect(conn.log.filter((l) => l.startsWith('StateChange'))).toEqual([]);
  });

  it('a handler error is an error reply with its one line; the connection stays', async () => {
    const rec = new Recorder();
    const { conn } = await start({ profile: '2.1' }, rec);
    await conn.ready;
    rec.failWith = new NetqosError('INVALID_ANNOTATION', 'netqos: pod nqt-test/bad: invalid annotation kubernetes.io/egress-bandwidth="10 M": not a Kubernetes quantity');
    expect(await conn.runPodSandbox(pod('bad'))).toEqual({
      ok: false,
      code: 3,
      message: 'netqos: pod nqt-test/bad: invalid annotation kubernetes.io/egress-bandwidth="10 M": not a Kubernetes quantity',
    });
    rec.failWith = new Error('something else\nwith a second line');
    expect(await conn.stopPodSandbox(pod('bad'))).toEqual({ ok: false, code: 2, message: 'something else' });
    rec.failWith = undefined;
    expect(await conn.runPodSandbox(pod('good'))).toMatchObject({ ok: true });
    expect(conn.closeReason).toBeUndefined();
  });

  it('an error message longer than one Go read buffer reaches the runtime whole', async () => {
    const rec = new Recorder();
    const { conn } = await start({ profile: '2.1' }, rec);
    await conn.ready;
    rec.failWith = new Error(`long ${'x'.repeat(10_000)}`);
    const r = await conn.runPodSandbox(pod('long'));
    expect(r).toMatchObject({ ok: false, code: 2 });
    expect((r as { message: string }).message).toHaveLength(10_005);
    expect(conn.closeReason).toBeUndefined();
  });

  it('a handler that outlives the deadline is answered DeadlineExceeded before the runtime gives up', async () => {
    const rec = new Recorder();
    const { conn } = await start({ profile: '2.1', requestTimeoutMs: 500 }, rec);
    await conn.ready;
    rec.delayMs = 800;
    const started = Date.now();
    const r = await conn.runPodSandbox(pod('slow'));
    const took = Date.now() - started;
    expect(r).toMatchObject({ ok: false, code: 4 });
    expect((r as { message: string }).message).toBe('netqos: StateChange did not finish within 400 ms (the runtime waits 500 ms)');
    expect(took).toBeLessThan(500);
    expect(conn.closeReason).toBeUndefined(); // the runtime did not have to drop us
  });

  it('answers Unimplemented for methods it does not have, and Shutdown', async () => {
    const rec = new Recorder();
    const { conn, ended } = await start({ profile: '2.1' }, rec);
    await conn.ready;
    expect(await conn.call('CreateContainer', Buffer.alloc(0))).toMatchObject({ ok: false, code: 12 });
    expect(await conn.call('NoSuchThing', Buffer.alloc(0))).toMatchObject({ ok: false, code: 12 });
    await conn.shutdown();
    const end = await ended;
    expect(end).toMatchObject({ registered: true, ready: true, shutdown: true });
    expect(rec.calls.at(-1)).toBe('shutdown');
  });

  it('ends with an error when the runtime sends what no runtime sends', async () => {
    const { conn, ended } = await start({ profile: '2.1' });
    await conn.ready;
    // a raw frame header claiming 5 MiB
    const bad = Buffer.alloc(8);
    bad.writeUInt32BE(1, 0);
    bad.writeUInt32BE(5 << 20, 4);
    (conn as unknown as { socket: { write(b: Buffer): void } }).socket.write(bad);
    const end = await ended;
    expect(end.error).toBeInstanceOf(NetqosError);
    expect(end.error!.message).toMatch(/declares 5242880 bytes/);
  });

  it('ends cleanly when the runtime goes away', async () => {
    const { conn, ended } = await start({ profile: '1.7' });
    await conn.ready;
    conn.drop('restart');
    const end = await ended;
    expect(end).toMatchObject({ registered: true, ready: true, shutdown: false });
    expect(end.error).toBeUndefined();
  });
});

describe('checkIdentity', () => {
  it('accepts NRI names and two-digit indexes, and says what is valid otherwise', () => {
    expect(() => checkIdentity('netqos', '10')).not.toThrow();
    expect(() => checkIdentity('net qos', '10')).toThrow('NRI plugin name "net qos": use letters, digits and _ . + - only, e.g. "netqos"');
    expect(() => checkIdentity('netqos', '1')).toThrow('NRI plugin index "1": use two digits, e.g. "10"');
  });
});
