/**
 * The NRI mux and ttrpc framing: frames written the way Go's reader accepts them (checked
 * with a model of that reader, test/support/nri-fake-runtime.ts GoReader), messages of any
 * size reassembled however the bytes arrive, and what no runtime may send rejected cleanly.
 */
import { describe, expect, it } from 'vitest';
import { NetqosError } from '../../src/domain/errors.js';
import { encodeFrames, GO_READ_BUFFER, MAX_FRAME_PAYLOAD, MuxDecoder } from '../../src/nri/mux.js';
import { encodeMessage, MAX_DATA_BYTES, MessageType, TtrpcDecoder } from '../../src/nri/ttrpc.js';
import { goFrames, GoReader } from '../support/nri-fake-runtime.js';

const payloadOf = (frame: Buffer): Buffer => frame.subarray(8);
const message = (n: number, sid = 1): Buffer =>
  encodeMessage({ streamId: sid, type: MessageType.REQUEST, flags: 0, data: Buffer.alloc(n, sid & 0xff) });

function protocolError(run: () => unknown): NetqosError {
  try {
    run();
  } catch (e) {
    expect(e).toBeInstanceOf(NetqosError);
    expect((e as NetqosError).code).toBe('PROTOCOL');
    return e as NetqosError;
  }
  throw new Error('accepted');
}

describe('encodeFrames: the Go bufio.Writer shape', () => {
  it.each([
    [10, [10]],
    [4096, [4096]],
    [4097, [4096, 1]],
    [6000, [4096, 1904]],
    [10_000, [4096, 5904]],
    [MAX_FRAME_PAYLOAD + 4096 + 5, [4096, MAX_FRAME_PAYLOAD, 5]],
  ])('a %i-byte message becomes frames of %j bytes', (n, sizes) => {
    const frames = encodeFrames(2, Buffer.alloc(n, 7));
    expect(frames.map((f) => f.readUInt32BE(4))).toEqual(sizes);
    expect(frames.map((f) => f.length - 8)).toEqual(sizes);
    expect(frames.every((f) => f.readUInt32BE(0) === 2)).toBe(true);
    expect(Buffer.concat(frames.map(payloadOf)).equals(Buffer.alloc(n, 7))).toBe(true);
  });

  it('is what the model of the Go writer produces', () => {
    for (const n of [10, 100, 4095, 4096, 4097, 8191, 8192, 8193, 70_000]) {
      const m = message(n - 10);
      expect(encodeFrames(1, m).map((f) => f.toString('hex'))).toEqual(goFrames(1, m).map((f) => f.toString('hex')));
    }
  });

  it('gives frames the Go reader reads, for every message size around the 4096-byte edge', () => {
    const reader = new GoReader();
    const sizes = [0, 1, 4075, 4076, 4077, 4086, 4087, 4096, 8182, 8183, 8192, 12_000, 100_000, 1 << 20];
    let sid = 1;
    for (const n of sizes) {
      const frames = encodeFrames(1, message(n, sid));
      const got = frames.flatMap((f) => reader.push(payloadOf(f)));
      expect(got).toHaveLength(1);
      expect(got[0]!.sid).toBe(sid);
      expect(got[0]!.data.length).toBe(n);
      sid += 2;
    }
  });

  it('the model rejects what containerd rejected: one frame of 4097 bytes', () => {
    // measured on containerd 2.1.9: a RegisterPlugin request in one 4097-byte frame dropped the
    // connection ("cannot allocate memory"), in one of 4096 bytes it registered
    expect(new GoReader().push(message(4086)).length).toBe(1);
    expect(() => new GoReader().push(message(4087))).toThrow(/cannot allocate memory/);
  });

  it('refuses connection 0', () => {
    protocolError(() => encodeFrames(0, Buffer.alloc(1)));
  });
});

describe('MuxDecoder', () => {
  const stream = Buffer.concat([...encodeFrames(1, message(5000, 1)), ...encodeFrames(2, message(3, 1)), ...encodeFrames(1, message(0, 3))]);

  it('gives whole frames however the bytes are cut', () => {
    for (const cut of [1, 7, 8, 9, 4095, 4104, stream.length]) {
      const d = new MuxDecoder();
      const frames = [];
      for (let at = 0; at < stream.length; at += cut) frames.push(...d.push(stream.subarray(at, at + cut)));
      expect(frames.map((f) => [f.conn, f.payload.length])).toEqual([
        [1, 4096],
        [1, 914],
        [2, 13],
        [1, 10],
      ]);
      expect(d.pending).toBe(0);
    }
  });

  it('rejects a declared length no runtime sends before buffering any of it', () => {
    const d = new MuxDecoder();
    const huge = Buffer.from('0000000100000000', 'hex');
    huge.writeUInt32BE(0xffffffff, 4); // 4 GiB
    const e = protocolError(() => d.push(huge));
    expect(e.message).toBe('NRI mux frame on connection 1 declares 4294967295 bytes; the most a runtime sends is 4194314');
    const just = Buffer.alloc(8);
    just.writeUInt32BE(1, 0);
    just.writeUInt32BE(MAX_FRAME_PAYLOAD + 1, 4);
    protocolError(() => new MuxDecoder().push(just));
  });

  it('accepts the largest frame Go writes', () => {
    const d = new MuxDecoder();
    const big = Buffer.alloc(8 + MAX_FRAME_PAYLOAD);
    big.writeUInt32BE(3, 0);
    big.writeUInt32BE(MAX_FRAME_PAYLOAD, 4);
    expect(d.push(big)).toHaveLength(1);
  });

  it('rejects frames on connection 0', () => {
    expect(protocolError(() => new MuxDecoder().push(Buffer.alloc(8))).message).toMatch(/connection 0, which is reserved/);
  });
});

describe('TtrpcDecoder', () => {
  it('reassembles a message larger than 4096 bytes from its frames, both directions of cutting', () => {
    const m = message(20_000, 7);
    for (const cuts of [[4096], [1, 9, 10, 4086], [13_000]]) {
      const d = new TtrpcDecoder();
      const got = [];
      let at = 0;
      let i = 0;
      while (at < m.length) {
        const n = cuts[i++ % cuts.length]!;
        got.push(...d.push(m.subarray(at, at + n)));
        at += n;
      }
      expect(got).toHaveLength(1);
      expect(got[0]).toMatchObject({ streamId: 7, type: 1, flags: 0 });
      expect(got[0]!.data.equals(Buffer.alloc(20_000, 7))).toBe(true);
    }
  });

  it('gives several messages from one chunk, and keeps a partial one', () => {
    const d = new TtrpcDecoder();
    const two = Buffer.concat([message(3, 1), message(0, 3), message(50, 5).subarray(0, 20)]);
    expect(d.push(two).map((m) => m.streamId)).toEqual([1, 3]);
    expect(d.pending).toBe(20);
    expect(d.push(message(50, 5).subarray(20)).map((m) => m.streamId)).toEqual([5]);
  });

  it('rejects a declared length above 4 MiB without waiting for it', () => {
    const h = Buffer.alloc(10);
    h.writeUInt32BE(MAX_DATA_BYTES + 1, 0);
    h.writeUInt32BE(9, 4);
    expect(protocolError(() => new TtrpcDecoder().push(h)).message).toBe(
      'ttrpc message on stream 9 declares 4194305 bytes; ttrpc carries at most 4194304',
    );
    protocolError(() => encodeMessage({ streamId: 1, type: 2, flags: 0, data: Buffer.alloc(MAX_DATA_BYTES + 1) }));
  });

  it('round-trips through the mux: a 4 MiB message written as frames and read back', () => {
    const m = message(MAX_DATA_BYTES, 11);
    const mux = new MuxDecoder();
    const tt = new TtrpcDecoder();
    const got = encodeFrames(1, m).flatMap((f) => mux.push(f)).flatMap((f) => tt.push(f.payload));
    expect(got).toHaveLength(1);
    expect(got[0]!.data.length).toBe(MAX_DATA_BYTES);
    expect(GO_READ_BUFFER).toBe(4096);
  });
});
