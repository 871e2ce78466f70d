'use strict';
// netqos-hook: loads the hook bundle (netqos-hook-main.cjs) through V8's code cache. Compiling
// the bundle cost 5.8 ms of the hook's 15 ms budget (measured); with the cache written next to
// it on the first run, later runs deserialize instead of compiling. A missing, stale or
// rejected cache only costs one compile, and an unwritable directory just means no cache.
// The cache holds the functions compiled by the run that wrote it (measured: 70 KB after a
// run that applied nothing, 130 KB after a createRuntime that shaped), so install.sh writes it
// from real runs: NETQOS_HOOK_CACHE=refresh writes it at exit even when one was loaded, and
// then it holds the loaded functions plus the ones this run compiled (createRuntime, then
// poststop). The runtime never sets it: a container start only reads the cache.
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

// Node's own CommonJS wrapper (require('node:module').wrap), written out: loading node:module
// pulls in the ES module loader, four internal modules and 0.3 ms we do not need (measured).
const wrap = (source) => `(function (exports, require, module, __filename, __dirname) { ${source}\n});`;

const file = path.join(__dirname, 'netqos-hook-main.cjs');
const cacheFile = `${file}.v8cache`;
let cachedData;
try {
  cachedData = fs.readFileSync(cacheFile);
} catch {
  cachedData = undefined;
}
const script = new vm.Script(wrap(fs.readFileSync(file, 'utf8')), { filename: file, cachedData });
if (cachedData === undefined || script.cachedDataRejected || process.env.NETQOS_HOOK_CACHE === 'refresh') {
  // written at exit, so the cache also holds the functions this run compiled lazily
  process.once('exit', () => {
    // whole or not at all: hooks of other containers may be reading it at the same time
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, script.createCachedData());
      fs.renameSync(tmp, cacheFile);
    } catch {
      // read-only install: no cache
      try {
        fs.rmSync(tmp, { force: true });
      } catch {
        // nothing was written
      }
    }
  });
}
const module_ = { exports: {} };
script.runInThisContext().call(module_.exports, module_.exports, require, module_, file, __dirname);
