// Bundles each entry point into one file so a start reads one module: the OCI hook runs for
// every container start and has a 15 ms budget beyond Node's own start-up.
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';

const entries = {
  'netqos-hook': 'src/hook/main.ts',
  netqos: 'src/cli/main.ts',
};

mkdirSync('dist', { recursive: true });
await Promise.all(
  Object.entries(entries).map(([name, entry]) =>
    build({
      entryPoints: [entry],
      outfile: `dist/${name}.mjs`,
      bundle: true,
      platform: 'node',
      target: 'node18',
      format: 'esm',
      minify: true,
      sourcemap: false,
      legalComments: 'none',
      // pino and friends are CommonJS: give the ESM bundle a require()
      banner: { js: "import{createRequire as __nqRequire}from'node:module';const require=__nqRequire(import.meta.url);" },
      logLevel: 'warning',
    }),
  ),
);
