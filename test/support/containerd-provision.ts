/**
 * Where test/fixtures/containerd/provision.sh (run by test/prepare.sh) unpacked containerd 2.1,
 * containerd 1.7 and the CRI proto, read from its manifest. Nothing here downloads: a missing or
 * stale cache is reported by provisionProblem() with the command that fixes it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ContainerdVersion = '2.1' | '1.7';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CONTAINERD_CACHE = process.env.NQT_CONTAINERD_CACHE ?? join(REPO, '.cache/containerd');
const MANIFEST = join(CONTAINERD_CACHE, 'manifest.json');
const CRI_PROTO_REL = 'usr/share/gocode/src/k8s.io/cri-api/pkg/apis/runtime/v1/api.proto';
const FIX = 'run `sudo bash test/prepare.sh` (or test/fixtures/containerd/provision.sh)';

interface ManifestItem {
  package: string;
  version: string;
  suite: string;
  dir: string;
  files: string[];
}

interface Manifest {
  manifestVersion: number;
  items: Record<string, ManifestItem>;
}

const ITEM: Record<ContainerdVersion, string> = { '2.1': 'containerd21', '1.7': 'containerd17' };

function manifest(): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(MANIFEST, 'utf8')) as Manifest;
  } catch {
    throw new Error(`containerd test cache missing (${MANIFEST}): ${FIX}`);
  }
  return m;
}

function item(name: string): ManifestItem {
  const it = manifest().items[name];
  if (!it) throw new Error(`${MANIFEST} lists no ${name}: ${FIX}`);
  for (const f of it.files) if (!existsSync(f)) throw new Error(`${f} missing: ${FIX}`);
  return it;
}

export interface ContainerdBinaries {
  version: ContainerdVersion;
  /** the Debian package version, e.g. 2.1.9+ds1-5 */
  debVersion: string;
  /** directory holding containerd, containerd-shim-runc-v2 and ctr (first on containerd's PATH) */
  binDir: string;
  containerd: string;
  ctr: string;
  shim: string;
}

export function containerdBinaries(version: ContainerdVersion): ContainerdBinaries {
  const it = item(ITEM[version]);
  const binDir = join(it.dir, 'usr/bin');
  return {
    version,
    debVersion: it.version,
    binDir,
    containerd: join(binDir, 'containerd'),
    ctr: join(binDir, 'ctr'),
    shim: join(binDir, 'containerd-shim-runc-v2'),
  };
}

/** runtime/v1/api.proto from Debian's golang-github-kubernetes-cri-api-dev */
export function criProtoPath(): string {
  return join(item('criapi').dir, CRI_PROTO_REL);
}

/** why the containerd tests cannot run here, or undefined */
export function provisionProblem(): string | undefined {
  try {
    containerdBinaries('2.1');
    containerdBinaries('1.7');
    criProtoPath();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
