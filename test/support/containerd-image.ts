/**
 * A tiny OCI image for containerd without a registry: one layer holding the static busybox of
 * bookworm's busybox-static with a few applet links, an entrypoint that sleeps until SIGTERM,
 * written as an OCI image-layout tar (`ctr images import` reads it). The same manifest is tagged
 * under every name given, so one import serves as the pod sandbox ("pause") image and as the
 * containers' image.
 *
 * Deterministic: fixed mtimes, uid/gid 0, sorted entries, gzip without a timestamp, so the same
 * busybox always gives the same digests (an import into a store that has it is a no-op).
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

// ---------------------------------------------------------------------------------------------
// a minimal ustar writer

interface TarEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  data?: Buffer;
  linkname?: string;
}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

function tarHeader(e: TarEntry): Buffer {
  const h = Buffer.alloc(512, 0);
  const name = e.type === 'dir' && !e.name.endsWith('/') ? `${e.name}/` : e.name;
  if (Buffer.byteLength(name) > 100) throw new Error(`tar: name ${name} longer than 100 bytes`);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(e.mode, 8), 100, 8, 'ascii');
  h.write(octal(0, 8), 108, 8, 'ascii'); // uid
  h.write(octal(0, 8), 116, 8, 'ascii'); // gid
  h.write(octal(e.type === 'file' ? (e.data?.length ?? 0) : 0, 12), 124, 12, 'ascii');
  h.write(octal(0, 12), 136, 12, 'ascii'); // mtime
  h.write('        ', 148, 8, 'ascii'); // checksum placeholder: spaces
  h.write(e.type === 'file' ? '0' : e.type === 'dir' ? '5' : '2', 156, 1, 'ascii');
  if (e.linkname) h.write(e.linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write('root', 265, 32, 'ascii');
  h.write('root', 297, 32, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

/** Pure: a tar archive of the entries, in the order given. */
export function tarArchive(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(tarHeader(e));
    if (e.type === 'file' && e.data && e.data.length > 0) {
      parts.push(e.data);
      const pad = (512 - (e.data.length % 512)) % 512;
      if (pad) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(1024)); // two zero blocks end the archive
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// the image

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** busybox applets linked into /bin (sh for the entrypoint; the rest for debugging a pod) */
const APPLETS = ['sh', 'sleep', 'cat', 'ls', 'ip', 'ping', 'true', 'false', 'wget', 'nc'];

/** the container's main process: sleep until TERM/INT, then exit 0 (a pause stand-in) */
export const SLEEP_FOREVER = ['/bin/sh', '-c', "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"];

export interface BuiltImage {
  /** the OCI archive written */
  path: string;
  names: string[];
  manifestDigest: string;
  layerDigest: string;
}

function layer(busybox: Buffer): Buffer {
  const dirs = ['bin', 'dev', 'etc', 'proc', 'sys', 'tmp', 'usr', 'usr/bin', 'sbin', 'var', 'run'];
  const entries: TarEntry[] = dirs.map((d) => ({ name: d, type: 'dir', mode: d === 'tmp' ? 0o1777 : 0o755 }));
  entries.push({ name: 'bin/busybox', type: 'file', mode: 0o755, data: busybox });
  for (const a of APPLETS) entries.push({ name: `bin/${a}`, type: 'symlink', mode: 0o777, linkname: 'busybox' });
  entries.push({ name: 'etc/passwd', type: 'file', mode: 0o644, data: Buffer.from('root:x:0:0:root:/:/bin/sh\n') });
  entries.push({ name: 'etc/group', type: 'file', mode: 0o644, data: Buffer.from('root:x:0:\n') });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return tarArchive(entries);
}

/**
 * Writes the OCI archive to `path`, tagged with every name in `names` (e.g. nqt.local/pause:1,
 * nqt.local/busybox:1). busybox: a static binary (bookworm's busybox-static /bin/busybox).
 */
export function buildImage(path: string, names: readonly string[], busyboxPath = '/bin/busybox'): BuiltImage {
  if (names.length === 0) throw new Error('buildImage: give at least one image name');
  const rawLayer = layer(readFileSync(busyboxPath));
  const gzLayer = gzipSync(rawLayer, { level: 6 }); // Node's gzip header carries no mtime
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/bin:/usr/bin:/sbin'], Entrypoint: SLEEP_FOREVER, WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [sha256(rawLayer)] },
      history: [{ created_by: 'netqos test/support/containerd-image.ts' }],
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(gzLayer), size: gzLayer.length }],
    }),
  );
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: names.map((n) => ({
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: sha256(manifest),
        size: manifest.length,
        platform: { architecture: 'amd64', os: 'linux' },
        annotations: { 'io.containerd.image.name': n, 'org.opencontainers.image.ref.name': n.slice(n.lastIndexOf(':') + 1) },
      })),
    }),
  );
  const blob = (b: Buffer): TarEntry => ({ name: `blobs/sha256/${sha256(b).slice(7)}`, type: 'file', mode: 0o644, data: b });
  const archive = tarArchive([
    { name: 'oci-layout', type: 'file', mode: 0o644, data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
    { name: 'index.json', type: 'file', mode: 0o644, data: index },
    { name: 'blobs', type: 'dir', mode: 0o755 },
    { name: 'blobs/sha256', type: 'dir', mode: 0o755 },
    blob(gzLayer),
    blob(config),
    blob(manifest),
  ]);
  writeFileSync(path, archive);
  return { path, names: [...names], manifestDigest: sha256(manifest), layerDigest: sha256(gzLayer) };
}
