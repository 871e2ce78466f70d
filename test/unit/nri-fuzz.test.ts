/**
 * Fuzzing the decoders with random, truncated and mutated input: every outcome is a result or
 * a NetqosError (PROTOCOL), never another exception, a hang, or memory that grows with what a
 * header claims. Deterministic (seeded), so a failure reproduces.
 */
import { describe, expect, it } from 'vitest';
import { NetqosError } from '../../src/domain/errors.js';
import { MuxDecoder } from '../../src/nri/mux.js';
import { decodeConfigure, decodePodRequest, decodeRequest, decodeResponse, decodeStateChange, decodeSynchronize } from '../../src/nri/proto.js';
import { TtrpcDecoder } from '../../src/nri/ttrpc.js';
import { goldenFrames } from '../support/nri-fake-runtime.js';

/** xorshift32: a small deterministic generator */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

function randomBytes(next: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(next() * 256);
  return b;
}

/** runs f; a thrown error must be a NetqosError PROTOCOL */
function clean(f: () => unknown): 'ok' | 'rejected' {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (!(e instanceof NetqosError) || e.code !== 'PROTOCOL') throw new Error(`not a clean rejection: ${String(e)}`, { cause: e });
    expect(e.message).not.toContain('\n');
    return 'rejected';
  }
}

const DECODERS = { decodeRequest, decodeResponse, decodeConfigure, decodeSynchronize, decodeStateChange, decodePodRequest };

describe('protobuf decoders', () => {
  const golden = goldenFrames().map((f) => f.bytes.subarray(10)); // the ttrpc data of each captured message

  it('reject or accept random bytes, nothing else', () => {
    const next = rng(0x6e71);
    const outcomes = { ok: 0, rejected: 0 };
    for (let i = 0; i < 3000; i++) {
      const bytes = randomBytes(next, Math.floor(next() * 300));
      for (const decode of Object.values(DECODERS)) outcomes[clean(() => decode(bytes))]++;
    }
    expect(outcomes.rejected).toBeGreaterThan(0);
    expect(outcomes.ok).toBeGreaterThan(0);
  });

  it('handle every truncation and single-byte mutation of the captured messages', () => {
    const next = rng(42);
    let rejected = 0;
    for (const data of golden) {
      for (let n = 0; n < data.length; n++) {
        for (const decode of Object.values(DECODERS)) if (clean(() => decode(data.subarray(0, n))) === 'rejected') rejected++;
      }
      for (let i = 0; i < 200 && data.length > 0; i++) {
        const m = Buffer.from(data);
        m[Math.floor(next() * m.length)] = Math.floor(next() * 256);
        for (const decode of Object.values(DECODERS)) clean(() => decode(m));
      }
    }
    expect(rejected).toBeGreaterThan(100);
  });

  it('reject a field that claims 4 GiB without allocating it', () => {
    // TtrpcRequest.payload (field 3, length-delimited) declaring 0xffffffff bytes
    const bytes = Buffer.from([0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]);
    const before = process.memoryUsage().arrayBuffers;
    expect(clean(() => decodeRequest(bytes))).toBe('rejected');
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1 << 20);
  });

  it('survive deeply nested groups', () => {
    const bytes = Buffer.concat([Buffer.alloc(50_000, 0x0b)]); // start-group of field 1, nested
    for (const decode of Object.values(DECODERS)) clean(() => decode(bytes));
  });
});

describe('frame decoders', () => {
  it('cut random streams without throwing anything but PROTOCOL, and hold at most one frame', () => {
    const next = rng(7);
    for (let i = 0; i < 2000; i++) {
      const mux = new MuxDecoder();
      const tt = new TtrpcDecoder();
      for (let j = 0; j < 5; j++) {
        const chunk = randomBytes(next, Math.floor(next() * 64));
        if (clean(() => mux.push(chunk)) === 'rejected') break;
        if (clean(() => tt.push(chunk)) === 'rejected') break;
      }
      // nothing buffered beyond what arrived: a header's claim is never allocated up front
      expect(mux.pending).toBeLessThanOrEqual(320);
      expect(tt.pending).toBeLessThanOrEqual(320);
    }
  });

  it('keep memory flat when a header claims the maximum and the bytes never come', () => {
    const before = process.memoryUsage().arrayBuffers;
    const decoders = Array.from({ length: 1000 }, () => new MuxDecoder());
    const header = Buffer.alloc(8);
    header.writeUInt32BE(1, 0);
    header.writeUInt32BE(10 + (4 << 20), 4);
    for (const d of decoders) expect(d.push(header)).toEqual([]);
    // 1000 pending 4 MiB frames would be 4 GiB; nothing is reserved for them
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(8 << 20);
  });
});
