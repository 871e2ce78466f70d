/**
 * A fake NRI runtime for tests: the containerd side of the wire, speaking what containerd 2.1.9
 * (NRI 0.8.0) and 1.7.24 (NRI 0.6.1) were captured sending (test/fixtures/nri/), over a real
 * unix socket. Written independently of src/nri (its own framing, its own protobuf field
 * numbers, from the captures and PROTOCOL.md), so the plugin's codecs are checked against a
 * second reading of the protocol rather than against themselves.
 *
 * What it reproduces:
 * - the Go reader of the mux: a 4096-byte bufio.Reader over frames handed out whole; a frame it
 *   cannot take in one read ends the connection ("cannot allocate memory", as containerd 2.1.9
 *   did for a 4097-byte frame); the Go writer's framing (4096 bytes, then the rest);
 * - the handshake: RegisterPlugin answered, Configure sent before that answer (2.1.9, as
 *   observed) or after it (1.7.24), the event mask checked against ValidEvents (0x7ff before NRI
 *   0.10: "invalid plugin events"), Synchronize, optionally split with `more` (NRI >= 0.8);
 * - pod events as StateChange with each version's fields (2.1: pid, ips, the netns path on run
 *   and stop; 1.7: no ips, nothing but annotations on stop and remove), or, for a NRI 0.12
 *   runtime, the dedicated calls with the fallback to StateChange on Unimplemented;
 * - the request timeout (2 s): a plugin that does not answer in time loses its connection.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import protobuf from 'protobufjs/light.js';

export type RuntimeProfile = '2.1' | '1.7' | '0.12';

export interface FakePod {
  id: string;
  name: string;
  namespace: string;
  uid?: string;
  /** the pod's own annotations (CRI PodSandboxConfig.annotations) */
  annotations?: Record<string, string>;
  /** network namespace path; omit for a host-network pod */
  netnsPath?: string;
  /** sandbox pid; omit to send none */
  pid?: number;
  ips?: string[];
}

export type CallResult = { ok: true; payload: Buffer } | { ok: false; code: number; message: string } | { ok: false; timedOut: true };

export interface RuntimeOptions {
  profile: RuntimeProfile;
  /** Configure's config string (the plugin's drop-in) */
  config?: string;
  /** pods listed in Synchronize */
  syncPods?: FakePod[];
  /** split Synchronize into messages of this many pods (NRI >= 0.8 only) */
  syncChunk?: number;
  requestTimeoutMs?: number;
  registrationTimeoutMs?: number;
  /** replay the captured 2.1.9 Configure and Synchronize bytes instead of encoding them */
  golden?: boolean;
}

const PLUGIN_CONN = 1;
const RUNTIME_CONN = 2;
const API = 'nri.pkg.api.v1alpha1.';
const GO_BUF = 4096;
const VALID = { '1.7': 0x7ff, '2.1': 0x7ff, '0.12': 0x3fff } as const;
const VERSION = { '1.7': '1.7.24~ds1', '2.1': '2.1.9+unknown', '0.12': '2.3.0' } as const;
const EVENT = { run: 1, stop: 2, remove: 3 } as const;
const DEDICATED = { run: 'RunPodSandbox', stop: 'StopPodSandbox', remove: 'RemovePodSandbox' } as const;

export const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'nri');

// ---------------------------------------------------------------------------------------------
// captured frames

export interface CapturedFrame {
  dir: 'plugin->runtime' | 'runtime->plugin';
  conn: number;
  /** the frame's payload (the mux header is not in the capture) */
  bytes: Buffer;
}

/** Every mux frame of the Go stub's session with containerd 2.1.9, in order. */
export function goldenFrames(): CapturedFrame[] {
  return readFileSync(join(FIXTURES, 'go-stub-vs-containerd-2.1.9.mux.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.includes('"hex"'))
    .map((l) => JSON.parse(l) as { dir: CapturedFrame['dir']; conn: number; hex: string })
    .map((f) => ({ dir: f.dir, conn: f.conn, bytes: Buffer.from(f.hex, 'hex') }));
}

// ---------------------------------------------------------------------------------------------
// protobuf, by field number (independent of nri/netqos-nri.proto)

type Field = [no: number, value: string | number | boolean | Buffer | undefined];

function pb(fields: readonly Field[]): Buffer {
  const w = protobuf.Writer.create();
  for (const [no, v] of fields) {
    if (v === undefined) continue;
    if (typeof v === 'string') w.uint32((no << 3) | 2).string(v);
    else if (Buffer.isBuffer(v)) w.uint32((no << 3) | 2).bytes(v);
    else if (typeof v === 'boolean') w.uint32(no << 3).bool(v);
    else w.uint32(no << 3).uint64(v);
  }
  const b = w.finish();
  return Buffer.from(b.buffer, b.byteOffset, b.length);
}

const map = (no: number, obj: Record<string, string>): Field[] => Object.entries(obj).map(([k, v]) => [no, pb([[1, k], [2, v]])]);

/** field number -> values (varints as numbers, length-delimited as Buffers) */
export function fieldsOf(bytes: Buffer): Map<number, (number | Buffer)[]> {
  const r = protobuf.Reader.create(bytes);
  const out = new Map<number, (number | Buffer)[]>();
  while (r.pos < r.len) {
    const tag = r.uint32();
    const no = tag >>> 3;
    const wire = tag & 7;
    let v: number | Buffer;
    if (wire === 0) v = Number(r.uint64());
    else if (wire === 2) v = Buffer.from(r.bytes());
    else {
      r.skipType(wire);
      continue;
    }
    out.set(no, [...(out.get(no) ?? []), v]);
  }
  return out;
}
const first = (f: Map<number, (number | Buffer)[]>, no: number): number | Buffer | undefined => f.get(no)?.[0];
const text = (v: number | Buffer | undefined): string => (Buffer.isBuffer(v) ? v.toString('utf8') : '');

/** PodSandbox as `profile` sends it for `event` (field presence from the captures) */
export function encodePod(pod: FakePod, profile: RuntimeProfile, event: 'run' | 'stop' | 'remove' | 'sync'): Buffer {
  const running = event === 'run' || event === 'sync';
  const user = pod.annotations ?? {};
  const sandboxAnnotations: Record<string, string> = {
    'io.kubernetes.cri.container-type': 'sandbox',
    'io.kubernetes.cri.sandbox-id': pod.id,
    'io.kubernetes.cri.sandbox-name': pod.name,
    'io.kubernetes.cri.sandbox-namespace': pod.namespace,
  };
  // 2.1 stop keeps the whole picture; 1.7 stop and every remove carry only the pod's own annotations
  const full = running || (profile !== '1.7' && event === 'stop');
  const annotations = full ? { ...sandboxAnnotations, ...user } : user;
  const namespaces = [pb([[1, 'pid']]), pb([[1, 'ipc']]), pb([[1, 'uts']]), pb([[1, 'mount']])];
  if (pod.netnsPath !== undefined) namespaces.push(pb([[1, 'network'], [2, pod.netnsPath]]));
  const linux = full ? pb([[4, `/k8s.io/${pod.id}`], ...namespaces.map((n): Field => [5, n])]) : Buffer.alloc(0);
  const ips = profile === '1.7' ? [] : (pod.ips ?? []);
  return pb([
    [1, pod.id],
    [2, pod.name],
    [3, pod.uid ?? `uid-${pod.name}`],
    [4, pod.namespace],
    ...map(5, { app: pod.name, 'io.cri-containerd.kind': 'sandbox' }),
    ...map(6, annotations),
    [8, linux],
    [9, running && pod.pid ? pod.pid : undefined],
    ...ips.map((ip): Field => [10, ip]),
  ]);
}

// ---------------------------------------------------------------------------------------------
// framing, as the Go peer does it

function muxFrame(conn: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(conn, 0);
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

function ttrpcMsg(sid: number, type: number, data: Buffer): Buffer {
  const h = Buffer.alloc(10);
  h.writeUInt32BE(data.length, 0);
  h.writeUInt32BE(sid, 4);
  h[8] = type;
  h[9] = 0;
  return Buffer.concat([h, data]);
}

/** Go's bufio.Writer(4096) over the mux: the first 4096 bytes, then the rest as one frame. */
export function goFrames(conn: number, message: Buffer): Buffer[] {
  const out = [muxFrame(conn, message.subarray(0, GO_BUF))];
  if (message.length > GO_BUF) out.push(muxFrame(conn, message.subarray(GO_BUF)));
  return out;
}

export interface GoMessage {
  sid: number;
  type: number;
  flags: number;
  data: Buffer;
}

/**
 * ttrpc's receive loop as Go runs it on one mux connection: io.ReadFull of the 10-byte header,
 * then of the data, through a 4096-byte bufio.Reader whose reads get one whole frame each. A
 * read that asks for >= 4096 bytes bypasses the buffer and takes the frame directly into the
 * destination, which must hold all of it; any other read fills the 4096-byte buffer. A frame
 * that does not fit throws, as the mux's Read fails with ENOMEM.
 */
export class GoReader {
  private frames: Buffer[] = [];
  private buffered: Buffer = Buffer.alloc(0);
  private got: Buffer[] = [];
  private gotLen = 0;
  private need = 10;
  private header: Buffer | undefined;

  push(frame: Buffer): GoMessage[] {
    this.frames.push(frame);
    const out: GoMessage[] = [];
    while (this.fill()) {
      const data = this.take();
      if (this.header === undefined) {
        const len = data.readUInt32BE(0);
        if (len > 4 << 20) throw new Error(`ttrpc message of ${len} bytes`);
        this.header = data;
        this.need = len;
        if (len > 0) continue;
      }
      const h = this.header;
      out.push({ sid: h.readUInt32BE(4), type: h[8]!, flags: h[9]!, data: data === h ? Buffer.alloc(0) : data });
      this.header = undefined;
      this.need = 10;
    }
    return out;
  }

  private take(): Buffer {
    const data = Buffer.concat(this.got);
    this.got = [];
    this.gotLen = 0;
    return data;
  }

  private fill(): boolean {
    while (this.gotLen < this.need) {
      const want = this.need - this.gotLen;
      if (this.buffered.length > 0) {
        const n = Math.min(want, this.buffered.length);
        this.got.push(this.buffered.subarray(0, n));
        this.buffered = this.buffered.subarray(n);
        this.gotLen += n;
        continue;
      }
      const f = this.frames.shift();
      if (f === undefined) return false;
      if (want >= GO_BUF) {
        if (f.length > want) throw new Error(`cannot allocate memory (frame of ${f.length} bytes read into ${want})`);
        this.got.push(f);
        this.gotLen += f.length;
      } else {
        if (f.length > GO_BUF) throw new Error(`cannot allocate memory (frame of ${f.length} bytes read into ${GO_BUF})`);
        this.buffered = f;
      }
    }
    return true;
  }
}

// ---------------------------------------------------------------------------------------------
// the runtime

interface Waiter {
  resolve: (r: CallResult) => void;
  timer: NodeJS.Timeout;
}

/** One plugin connection, from the runtime's side. */
export class PluginConnection {
  /** what happened, in order: "register netqos 10", "configure -> 0x7", "sync 2 pods", "StateChange 1 -> ok", ... */
  readonly log: string[] = [];
  /** what the runtime wrote, in order: "Configure", "RegisterPlugin reply", "StateChange", ... */
  readonly sent: string[] = [];
  registered: { name: string; idx: string } | undefined;
  events: number | undefined;
  /** why the runtime closed the connection (undefined: the plugin closed it, or still open) */
  closeReason: string | undefined;
  readonly closed: Promise<void>;
  readonly ready: Promise<void>;
  private markReady!: () => void;
  private failReady!: (e: Error) => void;
  private nextSid = 1;
  private readonly waiting = new Map<number, Waiter>();
  private readonly readers = new Map<number, GoReader>([
    [PLUGIN_CONN, new GoReader()],
    [RUNTIME_CONN, new GoReader()],
  ]);
  private inbuf = Buffer.alloc(0);
  private lastPluginSid = 0;

  constructor(
    private readonly socket: Socket,
    private readonly opts: RuntimeOptions,
  ) {
    this.ready = new Promise((res, rej) => {
      this.markReady = res;
      this.failReady = rej;
    });
    this.ready.catch(() => undefined);
    this.closed = new Promise((res) => socket.on('close', () => res()));
    socket.on('close', () => {
      for (const [, w] of this.waiting) {
        clearTimeout(w.timer);
        w.resolve({ ok: false, code: -1, message: 'connection closed' });
      }
      this.waiting.clear();
      this.failReady(new Error(`connection closed before synchronize: ${this.closeReason ?? 'by the plugin'}`));
    });
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const regTimer = setTimeout(() => {
      if (!this.registered) this.drop('plugin registration timed out');
    }, opts.registrationTimeoutMs ?? 5000);
    regTimer.unref();
  }

  get profile(): RuntimeProfile {
    return this.opts.profile;
  }

  /** Calls a Plugin method with a raw payload; the runtime's request timeout applies. */
  call(method: string, payload: Buffer, metadata = false): Promise<CallResult> {
    const sid = this.nextSid;
    this.nextSid += 2;
    const timeoutMs = this.opts.requestTimeoutMs ?? 2000;
    const md = metadata ? [pb([[1, 'containerd-namespace-ttrpc'], [2, 'k8s.io']])] : [];
    const req = pb([[1, `${API}Plugin`], [2, method], [3, payload], [4, timeoutMs * 1e6 - 50_000], ...md.map((m): Field => [5, m])]);
    this.sent.push(method);
    return this.request(sid, ttrpcMsg(sid, 1, req), timeoutMs, method);
  }

  /** Sends a captured ttrpc request as it is (its stream id included) and waits for the answer. */
  replay(message: Buffer, label: string): Promise<CallResult> {
    const sid = message.readUInt32BE(4);
    this.sent.push(label);
    this.nextSid = Math.max(this.nextSid, sid + 2);
    return this.request(sid, message, this.opts.requestTimeoutMs ?? 2000, label);
  }

  runPodSandbox(pod: FakePod): Promise<CallResult> {
    return this.podEvent('run', pod);
  }

  stopPodSandbox(pod: FakePod): Promise<CallResult> {
    return this.podEvent('stop', pod);
  }

  removePodSandbox(pod: FakePod): Promise<CallResult> {
    return this.podEvent('remove', pod);
  }

  /** Shutdown, then close (the runtime going down). */
  async shutdown(): Promise<void> {
    await this.call('Shutdown', Buffer.alloc(0));
    this.drop('runtime shut down');
  }

  /** Closes the connection without a word (the runtime crashing or restarting). */
  drop(reason: string): void {
    this.closeReason ??= reason;
    this.socket.destroy();
  }

  private async podEvent(kind: 'run' | 'stop' | 'remove', pod: FakePod): Promise<CallResult> {
    if (this.events === undefined || (this.events & (1 << (EVENT[kind] - 1))) === 0) {
      this.log.push(`${kind} ${pod.name}: not subscribed`);
      return { ok: true, payload: Buffer.alloc(0) };
    }
    const podBytes = encodePod(pod, this.opts.profile, kind);
    if (this.opts.profile === '0.12') {
      const r = await this.call(DEDICATED[kind], pb([[1, podBytes]]), true);
      this.log.push(`${DEDICATED[kind]} ${pod.name} -> ${describe(r)}`);
      if (r.ok || !('code' in r) || r.code !== 12) return r;
    }
    const r = await this.call('StateChange', pb([[1, EVENT[kind]], [2, podBytes]]), true);
    this.log.push(`StateChange ${EVENT[kind]} ${pod.name} -> ${describe(r)}`);
    return r;
  }

  private request(sid: number, message: Buffer, timeoutMs: number, label: string): Promise<CallResult> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(sid);
        resolve({ ok: false, timedOut: true });
        // a timeout is fatal for the plugin's connection (adaptation/plugin.go isFatalError)
        this.drop(`${label}: plugin did not answer within ${timeoutMs} ms`);
      }, timeoutMs);
      this.waiting.set(sid, { resolve, timer });
      this.write(PLUGIN_CONN, message);
    });
  }

  private write(conn: number, message: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(Buffer.concat(goFrames(conn, message)));
  }

  private onData(chunk: Buffer): void {
    this.inbuf = Buffer.concat([this.inbuf, chunk]);
    while (this.inbuf.length >= 8) {
      const conn = this.inbuf.readUInt32BE(0);
      const len = this.inbuf.readUInt32BE(4);
      if (this.inbuf.length < 8 + len) return;
      const payload = this.inbuf.subarray(8, 8 + len);
      this.inbuf = this.inbuf.subarray(8 + len);
      const reader = this.readers.get(conn);
      if (reader === undefined) continue; // not an open connection: dropped, as Go's mux does
      let msgs: GoMessage[];
      try {
        msgs = reader.push(payload);
      } catch (e) {
        this.drop(`error receiving message: ${(e as Error).message}`);
        return;
      }
      for (const m of msgs) {
        if (conn === PLUGIN_CONN) this.onResponse(m);
        else this.onPluginRequest(m);
      }
    }
  }

  private onResponse(m: GoMessage): void {
    const w = this.waiting.get(m.sid);
    if (w === undefined || m.type !== 2) return;
    this.waiting.delete(m.sid);
    clearTimeout(w.timer);
    const f = fieldsOf(m.data);
    const status = first(f, 1);
    if (Buffer.isBuffer(status)) {
      const s = fieldsOf(status);
      const code = Number(first(s, 1) ?? 0);
      if (code !== 0) {
        w.resolve({ ok: false, code, message: text(first(s, 2)) });
        return;
      }
    }
    const payload = first(f, 2);
    w.resolve({ ok: true, payload: Buffer.isBuffer(payload) ? payload : Buffer.alloc(0) });
  }

  /** the Runtime service: only RegisterPlugin matters here */
  private onPluginRequest(m: GoMessage): void {
    if (m.type !== 1 || m.sid % 2 !== 1 || m.sid <= this.lastPluginSid) {
      this.drop(`protocol error: plugin request type ${m.type} stream ${m.sid}`);
      return;
    }
    this.lastPluginSid = m.sid;
    const req = fieldsOf(m.data);
    const method = text(first(req, 2));
    const reply = (status?: { code: number; message: string }): void => {
      this.sent.push(`${method} reply`);
      this.write(RUNTIME_CONN, ttrpcMsg(m.sid, 2, status ? pb([[1, pb([[1, status.code], [2, status.message]])]]) : Buffer.alloc(0)));
    };
    if (text(first(req, 1)) !== `${API}Runtime` || method !== 'RegisterPlugin') {
      reply({ code: 12, message: `method ${method}` });
      return;
    }
    const p = fieldsOf((first(req, 3) as Buffer | undefined) ?? Buffer.alloc(0));
    const name = text(first(p, 1));
    const idx = text(first(p, 2));
    if (!/^[a-zA-Z0-9_.+-]+$/.test(name) || !/^[0-9]{2}$/.test(idx)) {
      reply({ code: 2, message: `invalid plugin name or index ${name} ${idx}` });
      this.drop('invalid plugin identity');
      return;
    }
    this.registered = { name, idx };
    this.log.push(`register ${name} ${idx}`);
    // 2.1.9 was seen sending Configure before the RegisterPlugin reply, 1.7.24 after it
    if (this.opts.profile === '1.7') reply();
    void this.configure().catch((e: Error) => this.drop(e.message));
    if (this.opts.profile !== '1.7') reply();
  }

  private async configure(): Promise<void> {
    const o = this.opts;
    const golden = o.golden ? goldenFrames().filter((f) => f.dir === 'runtime->plugin' && f.conn === PLUGIN_CONN) : undefined;
    let r: CallResult;
    if (golden) r = await this.replay(golden[0]!.bytes, 'Configure');
    else {
      const fields: Field[] = [
        [1, o.config],
        [2, 'containerd'],
        [3, VERSION[o.profile]],
      ];
      if (o.profile !== '1.7') fields.push([4, o.registrationTimeoutMs ?? 5000], [5, o.requestTimeoutMs ?? 2000]);
      if (o.profile === '0.12') fields.push([6, 'v0.12.0']);
      r = await this.call('Configure', pb(fields));
    }
    if (!r.ok) throw new Error(`failed to configure plugin: ${describe(r)}`);
    const events = Number(first(fieldsOf(r.payload), 2) ?? 0);
    this.log.push(`configure -> 0x${events.toString(16)}`);
    const extra = events & ~VALID[o.profile];
    if (extra !== 0) throw new Error(`invalid plugin events: 0x${extra.toString(16)}`);
    this.events = events === 0 ? VALID[o.profile] : events;
    await this.synchronize(golden?.[1]?.bytes);
    this.markReady();
  }

  private async synchronize(captured: Buffer | undefined): Promise<void> {
    if (captured) {
      const r = await this.replay(captured, 'Synchronize');
      if (!r.ok) throw new Error(`failed to synchronize plugin: ${describe(r)}`);
      this.log.push('sync 0 pods');
      return;
    }
    const pods = this.opts.syncPods ?? [];
    const chunk = this.opts.profile === '1.7' ? pods.length : (this.opts.syncChunk ?? pods.length);
    let at = 0;
    do {
      const part = pods.slice(at, at + Math.max(1, chunk));
      at += part.length;
      const more = at < pods.length;
      const r = await this.call('Synchronize', pb([...part.map((p): Field => [1, encodePod(p, this.opts.profile, 'sync')]), [3, more || undefined]]));
      if (!r.ok) throw new Error(`failed to synchronize plugin: ${describe(r)}`);
      const f = fieldsOf(r.payload);
      if (more && ((f.get(1)?.length ?? 0) > 0 || Number(first(f, 2) ?? 0) !== 1)) throw new Error('plugin does not handle split sync requests');
      this.log.push(`sync ${part.length} pods${more ? ' (more)' : ''}`);
    } while (at < pods.length);
  }
}

function describe(r: CallResult): string {
  if (r.ok) return 'ok';
  return 'timedOut' in r ? 'timed out' : `error ${r.code}: ${r.message}`;
}

/** A runtime listening on a unix socket in a private temporary directory. */
export class FakeRuntime {
  readonly socketPath: string;
  readonly connections: PluginConnection[] = [];
  private readonly dir: string;
  private server: Server | undefined;
  private waiters: ((c: PluginConnection) => void)[] = [];

  constructor(public opts: RuntimeOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'nqt-nri-'));
    this.socketPath = join(this.dir, 'nri.sock');
  }

  listen(): Promise<void> {
    return new Promise((resolve) => {
      this.server = createServer((s) => this.adopt(s));
      this.server.listen(this.socketPath, resolve);
    });
  }

  /** Serves a socket handed over some other way (a launched plugin's fd 3). */
  adopt(socket: Socket): PluginConnection {
    const c = new PluginConnection(socket, this.opts);
    this.connections.push(c);
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w(c);
    return c;
  }

  /** The next plugin connection (or the newest, if one came that nobody waited for yet). */
  nextConnection(timeoutMs = 5000): Promise<PluginConnection> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no plugin connected within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
  }

  /** Stops listening (the runtime going away); open connections are dropped. */
  async stop(): Promise<void> {
    for (const c of this.connections) c.drop('runtime stopped');
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = undefined;
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
