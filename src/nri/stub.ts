/**
 * The plugin side of NRI over one connection (a trunk): serves the Plugin service on mux
 * connection 1, calls the Runtime service on connection 2, registers, answers Configure with
 * the events the plugin handles, gathers a split Synchronize, and delivers the pod events
 * whether they come as StateChange (NRI < 0.12: containerd 1.7 to 2.2) or as their own calls
 * (NRI 0.12+). A handler's error becomes an error reply (the runtime fails that call); it never
 * ends the connection.
 */
import type { Duplex } from 'node:stream';
import { isNetqosError, NetqosError, oneLine } from '../domain/errors.js';
import type { Logger } from '../log.js';
import { POD_EVENT_HANDLERS, POD_EVENT_METHODS, subscriptionMask, validEvents, type PodEventHandlerName } from './events.js';
import { PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN } from './mux.js';
import {
  decodeConfigure,
  decodePodRequest,
  decodeStateChange,
  decodeSynchronize,
  EMPTY,
  encodeConfigureResponse,
  encodeRegisterPlugin,
  encodeSynchronizeResponse,
  PLUGIN_SERVICE,
  RUNTIME_SERVICE,
  type ConfigureRequest,
  type PodSandbox,
  type RpcStatus,
} from './proto.js';
import { Trunk } from './trunk.js';
import { TtrpcClient } from './ttrpc-client.js';
import { TtrpcServer, type CallInfo, type Handler } from './ttrpc-server.js';
import { Code, TtrpcDecoder } from './ttrpc.js';

export type { CallInfo };

export interface PluginHandlers {
  configure?(req: ConfigureRequest): void | Promise<void>;
  /** every pod the runtime knows, after (re)connecting: the whole list, even when it came split */
  synchronize?(pods: PodSandbox[], call: CallInfo): void | Promise<void>;
  runPodSandbox?(pod: PodSandbox, call: CallInfo): Promise<void>;
  stopPodSandbox?(pod: PodSandbox, call: CallInfo): Promise<void>;
  removePodSandbox?(pod: PodSandbox, call: CallInfo): Promise<void>;
  shutdown?(): void | Promise<void>;
}

export interface StubOptions {
  name: string;
  /** two digits: the plugin's place in the runtime's call order */
  idx: string;
  log: Logger;
  /** how long RegisterPlugin may take; default 5000 ms, the runtimes' registration timeout */
  registerTimeoutMs?: number;
  /** called once the runtime has configured and synchronized the plugin */
  onReady?: () => void;
}

export interface StubEnd {
  registered: boolean;
  ready: boolean;
  /** the runtime called Shutdown before closing */
  shutdown: boolean;
  /** why the connection ended, when it was not a plain close */
  error?: Error;
}

/** NRI's rules for a plugin's name and index (pkg/api/plugin.go) */
export function checkIdentity(name: string, idx: string): void {
  if (!/^[a-zA-Z0-9_.+-]+$/.test(name)) {
    throw new NetqosError('INVALID_ARGUMENT', `NRI plugin name ${JSON.stringify(name)}: use letters, digits and _ . + - only, e.g. "netqos"`);
  }
  if (!/^[0-9]{2}$/.test(idx)) {
    throw new NetqosError('INVALID_ARGUMENT', `NRI plugin index ${JSON.stringify(idx)}: use two digits, e.g. "10"`);
  }
}

/** How a handler's error is answered: the one place NRI replies are made from errors. */
export function statusOf(e: unknown): RpcStatus {
  const message = oneLine(e);
  if (isNetqosError(e) && (e.code === 'INVALID_ANNOTATION' || e.code === 'PROTOCOL')) return { code: Code.INVALID_ARGUMENT, message };
  return { code: Code.UNKNOWN, message };
}

/** Serves one connection until it closes; never rejects. */
export function serveStub(socket: Duplex, handlers: PluginHandlers, opts: StubOptions): Promise<StubEnd> {
  checkIdentity(opts.name, opts.idx);
  const { log } = opts;
  const end: StubEnd = { registered: false, ready: false, shutdown: false };
  let configured = false;
  let syncPods: PodSandbox[] = [];

  const podEvent = (name: PodEventHandlerName): ((pod: PodSandbox | undefined, call: CallInfo) => Promise<Buffer>) => async (pod, call) => {
    const handler = handlers[name];
    if (pod === undefined) throw new NetqosError('PROTOCOL', `${call.method} without a pod`);
    if (handler) await handler.call(handlers, pod, call);
    return EMPTY;
  };

  const methods: Record<string, Handler> = {
    Configure: async (payload) => {
      const req = decodeConfigure(payload);
      await handlers.configure?.(req);
      const events = subscriptionMask(handlers, validEvents(req.nriVersion));
      log.info(
        { runtime: `${req.runtimeName} ${req.runtimeVersion}`, nriVersion: req.nriVersion || undefined, events: `0x${events.toString(16)}` },
        'configured by the runtime',
      );
      configured = true;
      return encodeConfigureResponse(events);
    },
    Synchronize: async (payload, call) => {
      const req = decodeSynchronize(payload);
      syncPods.push(...req.pods);
      if (req.more) return encodeSynchronizeResponse(true);
      const pods = syncPods;
      syncPods = [];
      await handlers.synchronize?.(pods, call);
      if (!end.ready && configured) {
        end.ready = true;
        opts.onReady?.();
      }
      return encodeSynchronizeResponse(false);
    },
    Shutdown: async () => {
      end.shutdown = true;
      log.info({}, 'runtime shutting down');
      await handlers.shutdown?.();
      return EMPTY;
    },
    StateChange: (payload, call) => {
      const evt = decodeStateChange(payload);
      const name = Object.entries(POD_EVENT_HANDLERS).find(([, e]) => e === evt.event)?.[0] as PodEventHandlerName | undefined;
      // an event we did not subscribe to (a runtime may still send one): nothing to do
      if (name === undefined) return EMPTY;
      return podEvent(name)(evt.pod, call);
    },
  };
  for (const [method, name] of Object.entries(POD_EVENT_METHODS)) {
    // only what the plugin handles: for the rest Unimplemented tells a v0.12 runtime to fall back
    if (handlers[name]) methods[method] = (payload, call) => podEvent(name)(decodePodRequest(payload), call);
  }

  return new Promise<StubEnd>((resolve) => {
    const server = new TtrpcServer({
      service: PLUGIN_SERVICE,
      handlers: methods,
      send: (m) => trunk.send(PLUGIN_SERVICE_CONN, m),
      statusOf,
      onError: (method, status, late) =>
        log[late ? 'warn' : 'info']({ method, code: status.code, err: status.message }, late ? 'handler failed after its reply was sent' : 'call answered with an error'),
    });
    const client = new TtrpcClient((m) => trunk.send(RUNTIME_SERVICE_CONN, m));
    const serverIn = new TtrpcDecoder();
    const clientIn = new TtrpcDecoder();
    const trunk = new Trunk(
      socket,
      (f) => {
        try {
          if (f.conn === PLUGIN_SERVICE_CONN) for (const m of serverIn.push(f.payload)) server.receive(m);
          else if (f.conn === RUNTIME_SERVICE_CONN) for (const m of clientIn.push(f.payload)) client.receive(m);
          // frames for any other connection are dropped, as Go's mux drops them
        } catch (e) {
          trunk.close(e as Error);
        }
      },
      (err) => {
        client.close(err ?? new NetqosError('PROTOCOL', 'NRI connection closed'));
        if (err) end.error = err;
        resolve(end);
      },
    );
    client
      .call(RUNTIME_SERVICE, 'RegisterPlugin', encodeRegisterPlugin(opts.name, opts.idx), opts.registerTimeoutMs ?? 5000)
      .then(() => {
        end.registered = true;
        log.info({ plugin: opts.name, idx: opts.idx }, 'registered with the runtime');
      })
      .catch((e: Error) => {
        if (trunk.closed) return;
        log.error({ err: oneLine(e) }, 'registration failed');
        trunk.close(e);
      });
  });
}
