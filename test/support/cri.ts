/**
 * A small CRI client for the containerd end-to-end tests: gRPC over node:http2 on the runtime's
 * unix socket, messages encoded with protobufjs from the CRI API proto that Debian ships
 * (golang-github-kubernetes-cri-api-dev, unpacked by test/fixtures/containerd/provision.sh; never
 * committed here). Debian packages no crictl, and @grpc/grpc-js is not a dependency.
 *
 * gRPC on HTTP/2, as much as unary calls need: POST /runtime.v1.<Service>/<Method>,
 * content-type application/grpc, `te: trailers`, a grpc-timeout; each message is framed as
 * [u8 compressed=0][u32 BE length][protobuf]; the status comes in the trailers (grpc-status,
 * percent-encoded grpc-message), or in the headers of a trailers-only response.
 *
 *   const cri = await CriClient.open('/tmp/nqt-ctrd-ab12/containerd.sock');
 *   const v = await cri.version();
 *   const { pod_sandbox_id } = await cri.runPodSandbox(podConfig({ name: 'p1', annotations }));
 */
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import protobuf from 'protobufjs';
import { criProtoPath } from './containerd-provision.js';

// ---------------------------------------------------------------------------------------------
// schema

let schemaCache: protobuf.Root | undefined;

/**
 * The CRI v1 schema. Debian's api.proto imports gogo.proto for Go code-generation options only;
 * those lines are dropped before parsing (they change nothing on the wire).
 */
export function criSchema(path = criProtoPath()): protobuf.Root {
  if (schemaCache) return schemaCache;
  const text = readFileSync(path, 'utf8')
    .replace(/^import\s+"github\.com\/gogo\/protobuf\/gogoproto\/gogo\.proto";\s*$/m, '')
    .replace(/^option\s+\(gogoproto\.[a-z_]+\)\s*=\s*\w+;\s*$/gm, '')
    .replace(/\s*\[\(gogoproto\.[^\]]*\]/g, '');
  const root = protobuf.parse(text, { keepCase: true }).root;
  root.resolveAll();
  schemaCache = root;
  return root;
}

// ---------------------------------------------------------------------------------------------
// gRPC status

/** gRPC status codes by number (grpc/doc/statuscodes.md) */
export const GRPC_CODES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
] as const;

/** A CRI call that ended with a non-OK gRPC status: `message` is what crictl would show. */
export class CriError extends Error {
  constructor(
    readonly method: string,
    /** numeric gRPC status; -1 for transport failures (no status at all) */
    readonly code: number,
    /** grpc-message, decoded: what a kubelet / crictl user sees */
    readonly details: string,
  ) {
    super(`${method}: ${code >= 0 ? (GRPC_CODES[code] ?? `code ${code}`) : 'transport error'}: ${details}`);
    this.name = 'CriError';
  }

  get codeName(): string {
    return GRPC_CODES[this.code] ?? `code ${this.code}`;
  }
}

function decodeGrpcMessage(v: unknown): string {
  const s = Array.isArray(v) ? v.join(', ') : typeof v === 'string' ? v : '';
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

// ---------------------------------------------------------------------------------------------
// framing (pure)

/** [u8 0][u32 BE length][message] */
export function grpcFrame(message: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt8(0, 0);
  out.writeUInt32BE(message.length, 1);
  Buffer.from(message.buffer, message.byteOffset, message.length).copy(out, 5);
  return out;
}

/** Splits a response body into its messages; throws on a compressed or truncated one. */
export function grpcUnframe(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < body.length) {
    if (body.length - at < 5) throw new Error(`gRPC body: ${body.length - at} stray bytes after the last message`);
    const flag = body.readUInt8(at);
    const len = body.readUInt32BE(at + 1);
    if (flag !== 0) throw new Error('gRPC body: compressed message (none was asked for)');
    if (at + 5 + len > body.length) throw new Error(`gRPC body: message of ${len} bytes truncated at ${body.length - at - 5}`);
    out.push(body.subarray(at + 5, at + 5 + len));
    at += 5 + len;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// message shapes (the fields the tests read; keepCase names as in api.proto)

export type Service = 'RuntimeService' | 'ImageService';

export interface VersionResponse {
  version: string;
  runtime_name: string;
  runtime_version: string;
  runtime_api_version: string;
}

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt?: number;
}

export interface PodSandboxConfig {
  metadata: PodSandboxMetadata;
  hostname?: string;
  log_directory?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux?: {
    cgroup_parent?: string;
    security_context?: { namespace_options?: { network?: NamespaceMode; pid?: NamespaceMode; ipc?: NamespaceMode } };
  };
}

/** runtime.v1.NamespaceMode */
export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';

export type PodSandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';

export interface PodSandboxStatus {
  id: string;
  metadata: PodSandboxMetadata;
  state: PodSandboxState;
  created_at?: number;
  network?: { ip?: string; additional_ips?: { ip: string }[] };
  linux?: { namespaces?: { options?: { network?: NamespaceMode; pid?: NamespaceMode; ipc?: NamespaceMode } } };
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  runtime_handler?: string;
}

export interface PodSandboxStatusResponse {
  status: PodSandboxStatus;
  /** verbose only: e.g. info -> JSON with pid, runtimeSpec, ... */
  info?: Record<string, string>;
}

export interface PodSandbox {
  id: string;
  metadata: PodSandboxMetadata;
  state: PodSandboxState;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface ContainerConfig {
  metadata: { name: string; attempt?: number };
  image: { image: string };
  command?: string[];
  args?: string[];
  envs?: { key: string; value: string }[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  log_path?: string;
  linux?: Record<string, unknown>;
}

export type ContainerState = 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';

export interface ContainerStatusResponse {
  status: { id: string; state: ContainerState; exit_code?: number; reason?: string; message?: string; annotations?: Record<string, string> };
  info?: Record<string, string>;
}

export interface Container {
  id: string;
  pod_sandbox_id: string;
  metadata: { name: string };
  state: ContainerState;
}

export interface PodConfigOptions {
  name: string;
  /** default: `nqt-<name>` */
  uid?: string;
  /** Kubernetes namespace; default nqt-e2e */
  namespace?: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  /** share the node's network namespace (Kubernetes hostNetwork: true) */
  hostNetwork?: boolean;
  /** cgroupfs parent, e.g. /nqt-ctrd-ab12 */
  cgroupParent?: string;
  logDirectory?: string;
}

/** A PodSandboxConfig as the kubelet would send it (network POD or NODE, pid CONTAINER, ipc POD). */
export function podConfig(o: PodConfigOptions): PodSandboxConfig {
  return {
    metadata: { name: o.name, uid: o.uid ?? `nqt-${o.name}`, namespace: o.namespace ?? 'nqt-e2e', attempt: 0 },
    hostname: o.hostNetwork ? '' : o.name,
    ...(o.logDirectory ? { log_directory: o.logDirectory } : {}),
    labels: { app: o.name, ...o.labels },
    annotations: { ...o.annotations },
    linux: {
      cgroup_parent: o.cgroupParent ?? '',
      security_context: { namespace_options: { network: o.hostNetwork ? 'NODE' : 'POD', pid: 'CONTAINER', ipc: 'POD' } },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// client

export interface CallOptions {
  /** deadline, ms (sent as grpc-timeout and enforced here); default 60 000 */
  timeoutMs?: number;
}

export class CriClient {
  private session: http2.ClientHttp2Session | undefined;
  private readonly root: protobuf.Root;

  constructor(
    /** the runtime's CRI socket (containerd's grpc.address) */
    readonly socketPath: string,
    root?: protobuf.Root,
  ) {
    this.root = root ?? criSchema();
  }

  /** One HTTP/2 connection, re-made after the runtime closed it (a containerd restart). */
  private connect(): http2.ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(this.socketPath) });
    session.on('error', () => {
      // reported to the pending streams; the next call reconnects
    });
    session.on('close', () => {
      if (this.session === session) this.session = undefined;
    });
    session.unref();
    this.session = session;
    return session;
  }

  /** A unary call; resolves with the decoded response (plain object, enums as names). */
  call<T>(service: Service, method: string, request: object, opts: CallOptions = {}): Promise<T> {
    const svc = this.root.lookupService(`runtime.v1.${service}`);
    const m = svc.methods[method];
    if (!m) throw new Error(`CRI ${service} has no method ${method}`);
    m.resolve();
    const reqType = m.resolvedRequestType;
    const resType = m.resolvedResponseType;
    if (!reqType || !resType) throw new Error(`CRI ${method}: request/response types not resolved`);
    // fromObject, not verify: it takes enum names ('NODE') as the tests write them, and throws on a wrong shape
    const body = grpcFrame(reqType.encode(reqType.fromObject(request)).finish());
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const name = `${service}/${method}`;
    return new Promise<T>((resolve, reject) => {
      let session: http2.ClientHttp2Session;
      try {
        session = this.connect();
      } catch (e) {
        reject(new CriError(name, -1, String(e)));
        return;
      }
      const stream = session.request({
        ':method': 'POST',
        ':path': `/runtime.v1.${service}/${method}`,
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${timeoutMs}m`,
      });
      const chunks: Buffer[] = [];
      let headers: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      let settled = false;
      const finish = (f: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        f();
      };
      const timer = setTimeout(() => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        finish(() => reject(new CriError(name, 4, `no answer within ${timeoutMs} ms`)));
      }, timeoutMs + 1000);
      stream.on('response', (h) => (headers = h));
      stream.on('trailers', (t) => (trailers = t));
      stream.on('data', (b: Buffer) => chunks.push(b));
      stream.on('error', (e) => finish(() => reject(new CriError(name, -1, e.message))));
      stream.on('close', () =>
        finish(() => {
          const status = trailers['grpc-status'] ?? headers['grpc-status'];
          if (status === undefined) {
            reject(new CriError(name, -1, `stream closed without a grpc-status (HTTP ${headers[':status'] ?? '?'})`));
            return;
          }
          const code = Number(status);
          if (code !== 0) {
            reject(new CriError(name, code, decodeGrpcMessage(trailers['grpc-message'] ?? headers['grpc-message'])));
            return;
          }
          try {
            const [msg] = grpcUnframe(Buffer.concat(chunks));
            const decoded = resType.decode(msg ?? Buffer.alloc(0));
            resolve(resType.toObject(decoded, { longs: Number, enums: String, defaults: true }) as T);
          } catch (e) {
            reject(new CriError(name, -1, `bad response: ${String(e)}`));
          }
        }),
      );
      stream.end(body);
    });
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }

  // --- RuntimeService calls the tests use ----------------------------------------------------

  version(opts?: CallOptions): Promise<VersionResponse> {
    return this.call('RuntimeService', 'Version', { version: 'v1' }, opts);
  }

  runPodSandbox(config: PodSandboxConfig, runtimeHandler = '', opts?: CallOptions): Promise<{ pod_sandbox_id: string }> {
    return this.call('RuntimeService', 'RunPodSandbox', { config, runtime_handler: runtimeHandler }, opts);
  }

  stopPodSandbox(id: string, opts?: CallOptions): Promise<object> {
    return this.call('RuntimeService', 'StopPodSandbox', { pod_sandbox_id: id }, opts);
  }

  removePodSandbox(id: string, opts?: CallOptions): Promise<object> {
    return this.call('RuntimeService', 'RemovePodSandbox', { pod_sandbox_id: id }, opts);
  }

  podSandboxStatus(id: string, verbose = true, opts?: CallOptions): Promise<PodSandboxStatusResponse> {
    return this.call('RuntimeService', 'PodSandboxStatus', { pod_sandbox_id: id, verbose }, opts);
  }

  async listPodSandbox(opts?: CallOptions): Promise<PodSandbox[]> {
    const r = await this.call<{ items?: PodSandbox[] }>('RuntimeService', 'ListPodSandbox', {}, opts);
    return r.items ?? [];
  }

  createContainer(podId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig, opts?: CallOptions): Promise<{ container_id: string }> {
    return this.call('RuntimeService', 'CreateContainer', { pod_sandbox_id: podId, config, sandbox_config: sandboxConfig }, opts);
  }

  startContainer(id: string, opts?: CallOptions): Promise<object> {
    return this.call('RuntimeService', 'StartContainer', { container_id: id }, opts);
  }

  stopContainer(id: string, timeoutS = 2, opts?: CallOptions): Promise<object> {
    return this.call('RuntimeService', 'StopContainer', { container_id: id, timeout: timeoutS }, opts);
  }

  removeContainer(id: string, opts?: CallOptions): Promise<object> {
    return this.call('RuntimeService', 'RemoveContainer', { container_id: id }, opts);
  }

  containerStatus(id: string, verbose = false, opts?: CallOptions): Promise<ContainerStatusResponse> {
    return this.call('RuntimeService', 'ContainerStatus', { container_id: id, verbose }, opts);
  }

  async listContainers(opts?: CallOptions): Promise<Container[]> {
    const r = await this.call<{ containers?: Container[] }>('RuntimeService', 'ListContainers', {}, opts);
    return r.containers ?? [];
  }
}
