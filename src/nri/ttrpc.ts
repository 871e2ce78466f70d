/**
 * ttrpc's message framing (containerd/ttrpc channel.go): on each mux connection, a byte stream
 * of
 *
 *   [u32 BE data length][u32 BE stream id][u8 type][u8 flags][data]
 *
 * where data is a protobuf Request or Response (proto.ts). NRI uses only unary calls: a
 * Request (type 1, flags 0) answered by a Response (type 2, flags 0) on the same stream id;
 * the caller numbers its streams 1, 3, 5, ... on each connection. Pure.
 */
import { NetqosError } from '../domain/errors.js';
import { ByteQueue } from './byte-queue.js';

export const TTRPC_HEADER_BYTES = 10;
/** ttrpc's limit on one message's data */
export const MAX_DATA_BYTES = 4 << 20;

export const MessageType = { REQUEST: 1, RESPONSE: 2, DATA: 3 } as const;

/** The gRPC status codes ttrpc carries in Response.status.code (the ones netqos uses). */
export const Code = {
  OK: 0,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  FAILED_PRECONDITION: 9,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

export interface TtrpcMessage {
  streamId: number;
  type: number;
  flags: number;
  data: Buffer;
}

export function encodeMessage(m: TtrpcMessage): Buffer {
  if (m.data.length > MAX_DATA_BYTES) {
    throw new NetqosError('PROTOCOL', `ttrpc message of ${m.data.length} bytes; ttrpc carries at most ${MAX_DATA_BYTES}`);
  }
  const out = Buffer.allocUnsafe(TTRPC_HEADER_BYTES + m.data.length);
  out.writeUInt32BE(m.data.length, 0);
  out.writeUInt32BE(m.streamId, 4);
  out.writeUInt8(m.type, 8);
  out.writeUInt8(m.flags, 9);
  m.data.copy(out, TTRPC_HEADER_BYTES);
  return out;
}

/** Reassembles the messages of one connection from its frames' payloads. */
export class TtrpcDecoder {
  private readonly queue = new ByteQueue();

  /** Throws PROTOCOL when a header declares more than ttrpc allows (before buffering it). */
  push(chunk: Buffer): TtrpcMessage[] {
    this.queue.push(chunk);
    const out: TtrpcMessage[] = [];
    while (this.queue.length >= TTRPC_HEADER_BYTES) {
      const header = this.queue.peek(TTRPC_HEADER_BYTES);
      const length = header.readUInt32BE(0);
      if (length > MAX_DATA_BYTES) {
        throw new NetqosError(
          'PROTOCOL',
          `ttrpc message on stream ${header.readUInt32BE(4)} declares ${length} bytes; ttrpc carries at most ${MAX_DATA_BYTES}`,
        );
      }
      if (this.queue.length < TTRPC_HEADER_BYTES + length) break;
      this.queue.take(TTRPC_HEADER_BYTES);
      out.push({ streamId: header.readUInt32BE(4), type: header[8]!, flags: header[9]!, data: this.queue.take(length) });
    }
    return out;
  }

  get pending(): number {
    return this.queue.length;
  }
}
