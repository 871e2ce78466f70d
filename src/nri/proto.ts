/**
 * Protobuf encoding and decoding of the NRI and ttrpc messages netqos uses, with protobufjs's
 * light build over our own schema (schema.ts, the same as nri/netqos-nri.proto). Decoders give
 * plain camelCase objects with every field present (defaults filled in) and turn malformed
 * bytes into one PROTOCOL error naming the message. Pure.
 */
import protobuf from 'protobufjs/light.js';
import { NetqosError } from '../domain/errors.js';
import { NRI_SCHEMA } from './schema.js';

const root = protobuf.Root.fromJSON(NRI_SCHEMA as protobuf.INamespace);
const type = (name: string): protobuf.Type => root.lookupType(`netqos.nri.${name}`);
const T = {
  request: type('TtrpcRequest'),
  response: type('TtrpcResponse'),
  register: type('RegisterPluginRequest'),
  configure: type('ConfigureRequest'),
  configureResponse: type('ConfigureResponse'),
  synchronize: type('SynchronizeRequest'),
  synchronizeResponse: type('SynchronizeResponse'),
  stateChange: type('StateChangeEvent'),
  podRequest: type('PodSandboxRequest'),
};

/** NRI's fully qualified service names, as they travel in TtrpcRequest.service */
export const PLUGIN_SERVICE = 'nri.pkg.api.v1alpha1.Plugin';
export const RUNTIME_SERVICE = 'nri.pkg.api.v1alpha1.Runtime';

export const EMPTY = Buffer.alloc(0);

export interface TtrpcRequest {
  service: string;
  method: string;
  payload: Buffer;
  /** the caller's deadline, nanoseconds from when it sent the request; 0 = none */
  timeoutNano: number;
  metadata: { key: string; value: string }[];
}

export interface RpcStatus {
  code: number;
  message: string;
}

export interface TtrpcResponse {
  /** absent (or code 0) on success */
  status?: RpcStatus;
  payload: Buffer;
}

export interface LinuxNamespace {
  type: string;
  path: string;
}

export interface PodSandbox {
  id: string;
  name: string;
  uid: string;
  /** the Kubernetes namespace */
  namespace: string;
  annotations: Record<string, string>;
  /** linux.namespaces: the pod's namespaces; a network entry names its network namespace */
  linuxNamespaces: LinuxNamespace[];
  /** the sandbox's (pause) pid; 0 when the runtime sends none (stop, remove, stopped pods) */
  pid: number;
  ips: string[];
}

export interface ConfigureRequest {
  /** the plugin's drop-in config file, "" without one */
  config: string;
  runtimeName: string;
  runtimeVersion: string;
  /** 0 when the runtime does not say (NRI < 0.8) */
  registrationTimeoutMs: number;
  requestTimeoutMs: number;
  /** "" before NRI 0.12 */
  nriVersion: string;
}

export interface SynchronizeRequest {
  pods: PodSandbox[];
  more: boolean;
}

export interface StateChangeEvent {
  event: number;
  pod?: PodSandbox;
}

const OBJECT_OPTIONS: protobuf.IConversionOptions = { longs: Number, bytes: Buffer, defaults: true, arrays: true, objects: true };

function decode(t: protobuf.Type, bytes: Uint8Array): Record<string, unknown> {
  try {
    return t.toObject(t.decode(bytes), OBJECT_OPTIONS);
  } catch (e) {
    throw new NetqosError('PROTOCOL', `malformed ${t.name} from the runtime (${bytes.length} bytes): ${(e as Error).message}`, {
      cause: e,
    });
  }
}

function encode(t: protobuf.Type, value: Record<string, unknown>): Buffer {
  const bytes = t.encode(t.fromObject(value)).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

type Raw = Record<string, unknown>;
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
const buf = (v: unknown): Buffer => (Buffer.isBuffer(v) ? v : EMPTY);
const list = (v: unknown): Raw[] => (Array.isArray(v) ? (v as Raw[]) : []);
const raw = (v: unknown): Raw | undefined => (typeof v === 'object' && v !== null ? (v as Raw) : undefined);

export function decodeRequest(bytes: Uint8Array): TtrpcRequest {
  const r = decode(T.request, bytes);
  return {
    service: str(r.service),
    method: str(r.method),
    payload: buf(r.payload),
    timeoutNano: num(r.timeout_nano),
    metadata: list(r.metadata).map((kv) => ({ key: str(kv.key), value: str(kv.value) })),
  };
}

export function encodeRequest(req: Omit<TtrpcRequest, 'metadata'>): Buffer {
  return encode(T.request, { service: req.service, method: req.method, payload: req.payload, timeout_nano: req.timeoutNano });
}

export function decodeResponse(bytes: Uint8Array): TtrpcResponse {
  const r = decode(T.response, bytes);
  const s = raw(r.status);
  const out: TtrpcResponse = { payload: buf(r.payload) };
  if (s) out.status = { code: num(s.code), message: str(s.message) };
  return out;
}

/** Success leaves status out, as Go's ttrpc server does (captured: `12 02 10 07`). */
export function encodeResponse(res: TtrpcResponse): Buffer {
  if (res.status && res.status.code !== 0) return encode(T.response, { status: res.status });
  return encode(T.response, res.payload.length > 0 ? { payload: res.payload } : {});
}

export function encodeRegisterPlugin(name: string, idx: string): Buffer {
  return encode(T.register, { plugin_name: name, plugin_idx: idx });
}

export function decodeConfigure(bytes: Uint8Array): ConfigureRequest {
  const r = decode(T.configure, bytes);
  return {
    config: str(r.config),
    runtimeName: str(r.runtime_name),
    runtimeVersion: str(r.runtime_version),
    registrationTimeoutMs: num(r.registration_timeout),
    requestTimeoutMs: num(r.request_timeout),
    nriVersion: str(r.nri_version),
  };
}

export function encodeConfigureResponse(events: number): Buffer {
  return encode(T.configureResponse, { events });
}

export function decodeSynchronize(bytes: Uint8Array): SynchronizeRequest {
  const r = decode(T.synchronize, bytes);
  return { pods: list(r.pods).map(podOf), more: r.more === true };
}

export function encodeSynchronizeResponse(more: boolean): Buffer {
  return encode(T.synchronizeResponse, more ? { more } : {});
}

export function decodeStateChange(bytes: Uint8Array): StateChangeEvent {
  const r = decode(T.stateChange, bytes);
  const pod = raw(r.pod);
  return pod ? { event: num(r.event), pod: podOf(pod) } : { event: num(r.event) };
}

/** RunPodSandboxRequest, StopPodSandboxRequest and RemovePodSandboxRequest (NRI 0.12+) */
export function decodePodRequest(bytes: Uint8Array): PodSandbox | undefined {
  const pod = raw(decode(T.podRequest, bytes).pod);
  return pod ? podOf(pod) : undefined;
}

function podOf(p: Raw): PodSandbox {
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw(p.annotations) ?? {})) annotations[k] = str(v);
  return {
    id: str(p.id),
    name: str(p.name),
    uid: str(p.uid),
    namespace: str(p.namespace),
    annotations,
    linuxNamespaces: list(raw(p.linux)?.namespaces).map((n) => ({ type: str(n.type), path: str(n.path) })),
    pid: num(p.pid),
    ips: Array.isArray(p.ips) ? p.ips.map(str) : [],
  };
}
