#!/usr/bin/env node
// Runs a TypeScript bench script without tsx: bundles it with esbuild (a devDependency) into one
// temporary ESM file, runs that with this Node, and removes it afterwards.
//
//   node bench/run.mjs bench/hook-timing.ts [args...]
//
// Signals (Ctrl-C, SIGTERM, SIGHUP) are passed on to the script, which cleans up what it created and
// exits; this launcher then removes the bundle and exits with the script's status.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const [entry, ...args] = process.argv.slice(2);
if (!entry) {
  process.stderr.write('usage: node bench/run.mjs bench/<script>.ts [args...]\n');
  process.exit(2);
}

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));
const outfile = join(tmpdir(), `nqt-bench-${basename(entry, '.ts')}-${randomBytes(4).toString('hex')}.mjs`);

await build({
  absWorkingDir: repo,
  entryPoints: [resolve(entry)],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: 'inline',
  // test/support/fixtures.ts imports vitest only when run under vitest (VITEST set): never here
  external: ['vitest'],
  // pino and friends are CommonJS: give the ESM bundle a require() (as packaging/build.mjs does)
  banner: { js: "import{createRequire as __nqRequire}from'node:module';const require=__nqRequire(import.meta.url);" },
  logLevel: 'warning',
});

// detached: its own process group, so a terminal's Ctrl-C reaches it once, from here, and not
// a second time in the middle of its cleanup
const child = spawn(process.execPath, ['--enable-source-maps', outfile, ...args], { stdio: 'inherit', cwd: repo, detached: true });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig === 'SIGHUP' ? 'SIGTERM' : sig);
  });
}
child.on('exit', (code, signal) => {
  rmSync(outfile, { force: true });
  process.exitCode = code ?? (signal === 'SIGINT' ? 130 : signal === 'SIGTERM' ? 143 : 1);
});
