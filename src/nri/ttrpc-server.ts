/**
 * The ttrpc server side of one mux connection: each Request (odd, increasing stream id) is
 * dispatched by method name and answered once, with the handler's payload or an error status.
 * Unknown services and methods get Unimplemented (code 12), as Go's ttrpc server answers; a v0.12
 * runtime then falls back to the older call. A handler that has not finished by 80 % of the
 * caller's deadline is answered with DeadlineExceeded there and then: a runtime that times a
 * plugin out drops the whole connection (and starts the pod without it), an error reply only
 * fails that call.
 */
import { decodeRequest, encodeResponse, EMPTY, type RpcStatus, type TtrpcRequest } from './proto.js';
import { Code, encodeMessage, MessageType, type TtrpcMessage } from './ttrpc.js';

/** The share of the caller's timeout a handler may use before we answer for it. */
export const REPLY_FRACTION = 0.8;

export interface CallInfo {
  method: string;
  /**
   * aborted when the call was answered without the handler (its deadline passed): the runtime
   * has been told it failed, so whatever the handler did is to be undone. Not aborted when the
   * connection goes away: the runtime then carries on as if the plugin had not been there.
   */
  signal: AbortSignal;
  /** how long the caller waits for a reply, ms; undefined when it set no deadline */
  timeoutMs?: number;
  metadata: TtrpcRequest['metadata'];
}

export type Handler = (payload: Buffer, call: CallInfo) => Buffer | Promise<Buffer>;

export interface ServerOptions {
  service: string;
  handlers: Readonly<Record<string, Handler>>;
  send: (message: Buffer) => void;
  /** the status a handler's error is answered with */
  statusOf: (e: unknown, method: string) => RpcStatus;
  /** told about each call that was answered with an error, and about late results */
  onError?: (method: string, status: RpcStatus, late: boolean) => void;
}

export class TtrpcServer {
  private lastStream = 0;

  constructor(private readonly opts: ServerOptions) {}

  receive(m: TtrpcMessage): void {
    if (m.type !== MessageType.REQUEST) return; // NRI is unary: nothing else is meant for a server
    if (m.streamId % 2 !== 1 || m.streamId <= this.lastStream) {
      this.reply(m.streamId, undefined, {
        code: Code.INVALID_ARGUMENT,
        message: `stream id ${m.streamId}: a client's stream ids must be odd and increasing (last was ${this.lastStream})`,
      });
      return;
    }
    this.lastStream = m.streamId;
    let req: TtrpcRequest;
    try {
      req = decodeRequest(m.data);
    } catch (e) {
      this.reply(m.streamId, undefined, this.opts.statusOf(e, '?'));
      return;
    }
    const handler = req.service === this.opts.service && Object.hasOwn(this.opts.handlers, req.method) ? this.opts.handlers[req.method] : undefined;
    if (handler === undefined) {
      const what = req.service === this.opts.service ? `method ${req.method}` : `service ${req.service}`;
      this.reply(m.streamId, undefined, { code: Code.UNIMPLEMENTED, message: `${what} not implemented by this plugin` });
      return;
    }
    void this.serve(m.streamId, req, handler);
  }

  private async serve(streamId: number, req: TtrpcRequest, handler: Handler): Promise<void> {
    const control = new AbortController();
    const timeoutMs = req.timeoutNano > 0 ? req.timeoutNano / 1e6 : undefined;
    let answered = false;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            answered = true;
            const status = {
              code: Code.DEADLINE_EXCEEDED,
              message: `netqos: ${req.method} did not finish within ${Math.round(timeoutMs * REPLY_FRACTION)} ms (the runtime waits ${Math.round(timeoutMs)} ms)`,
            };
            this.opts.onError?.(req.method, status, false);
            this.reply(streamId, undefined, status);
            control.abort();
          }, timeoutMs * REPLY_FRACTION);
    const info: CallInfo = { method: req.method, signal: control.signal, metadata: req.metadata };
    if (timeoutMs !== undefined) info.timeoutMs = timeoutMs;
    let payload: Buffer | undefined;
    let status: RpcStatus | undefined;
    try {
      payload = await handler(req.payload, info);
    } catch (e) {
      status = this.opts.statusOf(e, req.method);
    }
    clearTimeout(timer);
    if (status) this.opts.onError?.(req.method, status, answered);
    if (answered) return;
    this.reply(streamId, payload, status);
  }

  private reply(streamId: number, payload: Buffer | undefined, status: RpcStatus | undefined): void {
    const data = encodeResponse(status ? { status, payload: EMPTY } : { payload: payload ?? EMPTY });
    this.opts.send(encodeMessage({ streamId, type: MessageType.RESPONSE, flags: 0, data }));
  }
}
