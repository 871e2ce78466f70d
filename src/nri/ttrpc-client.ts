/**
 * The ttrpc client side of one mux connection: unary calls with odd, increasing stream ids
 * (1, 3, 5, ...), each answered by the Response with the same id. A non-zero status becomes a
 * rejected call. Fed with the connection's messages by the stub; sends through `send`.
 */
import { NetqosError } from '../domain/errors.js';
import { decodeResponse, encodeRequest, type RpcStatus } from './proto.js';
import { encodeMessage, MessageType, type TtrpcMessage } from './ttrpc.js';

/** A call the server answered with an error status. */
export class RpcCallError extends NetqosError {
  readonly status: RpcStatus;

  constructor(call: string, status: RpcStatus) {
    super('PROTOCOL', `${call} failed: code ${status.code}: ${status.message}`);
    this.status = status;
  }
}

interface Pending {
  call: string;
  resolve: (payload: Buffer) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class TtrpcClient {
  private nextStream = 1;
  private readonly pending = new Map<number, Pending>();
  private closedBy: Error | undefined;

  constructor(private readonly send: (message: Buffer) => void) {}

  /** Calls service/method; resolves with the response payload. */
  call(service: string, method: string, payload: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.closedBy) return Promise.reject(this.closedBy);
    const streamId = this.nextStream;
    this.nextStream += 2;
    const call = `${service}/${method}`;
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(streamId);
        reject(new NetqosError('TIMEOUT', `${call}: no reply from the runtime within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(streamId, { call, resolve, reject, timer });
      const data = encodeRequest({ service, method, payload, timeoutNano: timeoutMs * 1e6 });
      this.send(encodeMessage({ streamId, type: MessageType.REQUEST, flags: 0, data }));
    });
  }

  /** A message the peer sent on this connection. */
  receive(m: TtrpcMessage): void {
    const p = this.pending.get(m.streamId);
    if (p === undefined || m.type !== MessageType.RESPONSE) return; // late (timed out) or not ours: ignored as Go does
    this.pending.delete(m.streamId);
    clearTimeout(p.timer);
    let res;
    try {
      res = decodeResponse(m.data);
    } catch (e) {
      p.reject(e as Error);
      return;
    }
    if (res.status && res.status.code !== 0) p.reject(new RpcCallError(p.call, res.status));
    else p.resolve(res.payload);
  }

  /** Fails every pending and later call with `reason`. */
  close(reason: Error): void {
    this.closedBy ??= reason;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(reason);
      this.pending.delete(id);
    }
  }
}
