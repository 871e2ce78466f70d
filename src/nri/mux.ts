/**
 * The NRI multiplexer's frames (containerd/nri pkg/net/multiplex): one unix socket carries
 * several logical connections, each a byte stream cut into frames of
 *
 *   [u32 BE connection id][u32 BE payload length][payload]
 *
 * Connection 1 carries the Plugin service (the runtime calls us), connection 2 the Runtime
 * service (we call the runtime). A frame is a fragment, not a message: a ttrpc message may
 * span frames and the reader of each connection reassembles it (see ttrpc.ts). Pure: bytes in,
 * frames out, and the reverse.
 */
import { NetqosError } from '../domain/errors.js';
import { ByteQueue } from './byte-queue.js';

export const PLUGIN_SERVICE_CONN = 1;
export const RUNTIME_SERVICE_CONN = 2;
export const MUX_HEADER_BYTES = 8;
/** the largest payload Go's mux writes or reads: a ttrpc header plus its 4 MiB maximum */
export const MAX_FRAME_PAYLOAD = 10 + (4 << 20);
/**
 * The Go peer reads each connection through a 4096-byte bufio.Reader, and the mux hands a
 * reader one whole frame or fails with ENOMEM: a frame longer than this is read only when the
 * reader asks for at least that many bytes at once (the rest of a message, after its first
 * 4096 bytes). Measured on containerd 2.1.9: a 4097-byte frame drops the connection.
 */
export const GO_READ_BUFFER = 4096;

export interface Frame {
  conn: number;
  payload: Buffer;
}

function frame(conn: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(MUX_HEADER_BYTES + payload.length);
  out.writeUInt32BE(conn, 0);
  out.writeUInt32BE(payload.length, 4);
  payload.copy(out, MUX_HEADER_BYTES);
  return out;
}

/**
 * The frames for one whole message on one connection, cut the way Go's bufio.Writer (4096
 * bytes) cuts the ttrpc messages containerd writes: the first min(4096, length) bytes, then the
 * rest as one frame (split only at the mux maximum). The Go reader accepts exactly this shape.
 * Never more than one message per frame.
 */
export function encodeFrames(conn: number, message: Buffer): Buffer[] {
  checkConn(conn);
  const frames = [frame(conn, message.subarray(0, GO_READ_BUFFER))];
  for (let at = GO_READ_BUFFER; at < message.length; at += MAX_FRAME_PAYLOAD) {
    frames.push(frame(conn, message.subarray(at, at + MAX_FRAME_PAYLOAD)));
  }
  return frames;
}

/** Cuts a received byte stream into frames; a frame is complete before it is returned. */
export class MuxDecoder {
  private readonly queue = new ByteQueue();

  /** Throws PROTOCOL on a reserved connection id or a length no Go peer writes. */
  push(chunk: Buffer): Frame[] {
    this.queue.push(chunk);
    const out: Frame[] = [];
    while (this.queue.length >= MUX_HEADER_BYTES) {
      const header = this.queue.peek(MUX_HEADER_BYTES);
      const conn = header.readUInt32BE(0);
      const length = header.readUInt32BE(4);
      // checked before waiting for (or allocating) the payload: a declared 4 GiB costs nothing
      checkConn(conn);
      if (length > MAX_FRAME_PAYLOAD) {
        throw new NetqosError(
          'PROTOCOL',
          `NRI mux frame on connection ${conn} declares ${length} bytes; the most a runtime sends is ${MAX_FRAME_PAYLOAD}`,
        );
      }
      if (this.queue.length < MUX_HEADER_BYTES + length) break;
      this.queue.take(MUX_HEADER_BYTES);
      out.push({ conn, payload: this.queue.take(length) });
    }
    return out;
  }

  /** bytes received that do not yet make a whole frame */
  get pending(): number {
    return this.queue.length;
  }
}

function checkConn(conn: number): void {
  if (conn === 0) {
    throw new NetqosError('PROTOCOL', 'NRI mux frame on connection 0, which is reserved; connections are numbered from 1');
  }
}
