/**
 * Our NRI schema against the bytes containerd 2.1.9 and the Go stub exchanged (captured,
 * test/fixtures/nri/): every field netqos reads decodes to what the capture says, and what
 * netqos writes is byte for byte what the Go stub wrote. Also: nri/netqos-nri.proto and the
 * descriptor the daemon is built with are the same schema.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { MuxDecoder } from '../../src/nri/mux.js';
import {
  decodeConfigure,
  decodeRequest,
  decodeResponse,
  decodeStateChange,
  decodeSynchronize,
  EMPTY,
  encodeConfigureResponse,
  encodeRegisterPlugin,
  encodeRequest,
  encodeResponse,
  encodeSynchronizeResponse,
} from '../../src/nri/proto.js';
import { NRI_SCHEMA } from '../../src/nri/schema.js';
import { encodeMessage, MessageType, TtrpcDecoder } from '../../src/nri/ttrpc.js';
import { FIXTURES, goldenFrames } from '../support/nri-fake-runtime.js';

const repo = join(import.meta.dirname, '..', '..');

describe('nri/netqos-nri.proto', () => {
  it('is the schema src/nri/schema.ts holds', () => {
    const text = readFileSync(join(repo, 'nri', 'netqos-nri.proto'), 'utf8');
    const parsed = protobuf.parse(text, { keepCase: true }).root.toJSON();
    expect(parsed).toEqual(NRI_SCHEMA);
  });
});

/** the ttrpc messages of the capture, reassembled from its frames */
function capturedMessages(): { dir: string; conn: number; streamId: number; type: number; data: Buffer; raw: Buffer }[] {
  const decoders = new Map<string, TtrpcDecoder>();
  const out = [];
  for (const f of goldenFrames()) {
    const key = `${f.dir} ${f.conn}`;
    if (!decoders.has(key)) decoders.set(key, new TtrpcDecoder());
    for (const m of decoders.get(key)!.push(f.bytes)) out.push({ dir: f.dir, conn: f.conn, ...m, raw: f.bytes });
  }
  return out;
}

describe('golden traffic of containerd 2.1.9 and the Go stub', () => {
  const msgs = capturedMessages();
  const requests = msgs.filter((m) => m.type === MessageType.REQUEST).map((m) => ({ ...m, req: decodeRequest(m.data) }));

  it('holds the calls PROTOCOL.md describes, in that order, on the right connections', () => {
    expect(requests.map((r) => `${r.conn} ${r.streamId} ${r.req.method}`)).toEqual([
      '2 1 RegisterPlugin',
      '1 1 Configure',
      '1 3 Synchronize',
      '1 5 StateChange',
      '1 7 StateChange',
      '1 9 StateChange',
    ]);
    for (const r of requests) {
      expect(r.req.service).toBe(r.conn === 2 ? 'nri.pkg.api.v1alpha1.Runtime' : 'nri.pkg.api.v1alpha1.Plugin');
      expect(r.req.timeoutNano).toBeGreaterThan(1e9);
    }
  });

  it('encodes RegisterPlugin exactly as the Go stub did', () => {
    const reg = requests[0]!;
    const payload = encodeRegisterPlugin('nlgologger', '40');
    expect(payload.equals(reg.req.payload)).toBe(true);
    const ours = encodeMessage({
      streamId: 1,
      type: MessageType.REQUEST,
      flags: 0,
      data: encodeRequest({ service: reg.req.service, method: 'RegisterPlugin', payload, timeoutNano: reg.req.timeoutNano }),
    });
    expect(ours.toString('hex')).toBe(reg.raw.toString('hex'));
  });

  it('decodes Configure: runtime, version and timeouts, no config', () => {
    const c = decodeConfigure(requests[1]!.req.payload);
    expect(c).toEqual({
      config: '',
      runtimeName: 'containerd',
      runtimeVersion: '2.1.9+unknown',
      registrationTimeoutMs: 5000,
      requestTimeoutMs: 2000,
      nriVersion: '',
    });
  });

  it('answers Configure and the other calls with the bytes the Go stub sent', () => {
    const replies = msgs.filter((m) => m.dir === 'plugin->runtime' && m.type === MessageType.RESPONSE);
    expect(decodeResponse(replies[0]!.data)).toEqual({ payload: encodeConfigureResponse(7) });
    const configure = encodeMessage({ streamId: 1, type: MessageType.RESPONSE, flags: 0, data: encodeResponse({ payload: encodeConfigureResponse(7) }) });
    expect(configure.toString('hex')).toBe(replies[0]!.raw.toString('hex'));
    for (const r of replies.slice(1)) {
      const empty = encodeMessage({ streamId: r.streamId, type: MessageType.RESPONSE, flags: 0, data: encodeResponse({ payload: encodeSynchronizeResponse(false) }) });
      expect(empty.toString('hex')).toBe(r.raw.toString('hex'));
    }
    // the runtime's empty RegisterPlugin reply
    const regReply = msgs.find((m) => m.dir === 'runtime->plugin' && m.type === MessageType.RESPONSE)!;
    expect(decodeResponse(regReply.data)).toEqual({ payload: EMPTY });
  });

  it('decodes an empty Synchronize', () => {
    expect(decodeSynchronize(requests[2]!.req.payload)).toEqual({ pods: [], more: false });
  });

  it('decodes the pod of RUN, STOP and REMOVE_POD_SANDBOX with what each carries', () => {
    const [run, stop, remove] = requests.slice(3).map((r) => decodeStateChange(r.req.payload));
    const netns = '/tmp/nri-lab/run/state/io.containerd.grpc.v1.cri/netns/cni-e0855ed1-65a3-ef32-6a9f-6f7e16263b0a';
    expect(run!.event).toBe(1);
    expect(run!.pod).toMatchObject({
      id: '4dd3a29745edc7be7af2987bbd822246fb01c254485e76a1a0bd388654f03f21',
      name: 'nlpodgolden',
      uid: 'uid-nlpodgolden',
      namespace: 'nl-test',
      pid: 30548,
      ips: ['10.250.77.9'],
    });
    expect(run!.pod!.annotations).toMatchObject({ 'kubernetes.io/egress-bandwidth': '5M', 'kubernetes.io/ingress-bandwidth': '10M' });
    expect(run!.pod!.linuxNamespaces).toContainEqual({ type: 'network', path: netns });
    expect(run!.pod!.linuxNamespaces.map((n) => n.type)).toEqual(['pid', 'ipc', 'uts', 'mount', 'network']);
    expect(stop!.event).toBe(2);
    expect(stop!.pod!.pid).toBe(0);
    expect(stop!.pod!.linuxNamespaces).toContainEqual({ type: 'network', path: netns });
    expect(remove!.event).toBe(3);
    expect(remove!.pod!.pid).toBe(0);
    expect(remove!.pod!.linuxNamespaces).toEqual([]);
    expect(remove!.pod!.annotations).toEqual({ 'kubernetes.io/egress-bandwidth': '5M', 'kubernetes.io/ingress-bandwidth': '10M' });
  });

  it('has one frame per message (none needs the 4096-byte split)', () => {
    expect(Math.max(...goldenFrames().map((f) => f.bytes.length))).toBeLessThanOrEqual(4096);
    expect(capturedMessages().length).toBe(goldenFrames().length);
  });

  it('reassembles the capture fed through the mux decoder one byte at a time', () => {
    const stream = Buffer.concat(
      goldenFrames()
        .filter((f) => f.dir === 'runtime->plugin')
        .map((f) => {
          const h = Buffer.alloc(8);
          h.writeUInt32BE(f.conn, 0);
          h.writeUInt32BE(f.bytes.length, 4);
          return Buffer.concat([h, f.bytes]);
        }),
    );
    const mux = new MuxDecoder();
    const ttrpc = new TtrpcDecoder();
    const methods: string[] = [];
    for (let i = 0; i < stream.length; i++) {
      for (const f of mux.push(stream.subarray(i, i + 1))) {
        if (f.conn === 1) for (const m of ttrpc.push(f.payload)) methods.push(decodeRequest(m.data).method);
      }
    }
    expect(methods).toEqual(['Configure', 'Synchronize', 'StateChange', 'StateChange', 'StateChange']);
    expect(mux.pending).toBe(0);
  });
});

describe('decoded captures of containerd 1.7.24 (NRI 0.6.1)', () => {
  it('show the fields our schema relies on: no ips, and no pid or namespaces on stop and remove', () => {
    const lines = readFileSync(join(FIXTURES, 'node-probe-vs-containerd-1.7.24.jsonl'), 'utf8').trim().split('\n');
    const pods = lines
      .map((l) => JSON.parse(l) as { ev: string; event?: string; pod?: { pid?: number; ips?: string[]; linux?: { namespaces?: unknown[] } } })
      .filter((e) => e.ev === 'rpc StateChange' && e.event?.endsWith('POD_SANDBOX'));
    expect(pods.map((p) => p.event)).toEqual(['RUN_POD_SANDBOX', 'STOP_POD_SANDBOX', 'REMOVE_POD_SANDBOX']);
    expect(pods[0]!.pod!.pid).toBeGreaterThan(0);
    expect(pods[0]!.pod!.ips).toBeUndefined();
    for (const p of pods.slice(1)) {
      expect(p.pod!.pid).toBeUndefined();
      expect(p.pod!.linux?.namespaces).toBeUndefined();
    }
  });
});
