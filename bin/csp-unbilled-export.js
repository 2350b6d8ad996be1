#!/usr/bin/env node
'use strict';
// The csp-unbilled-export command (also `npm start`, `npm run cli -- ...`, `npx csp-unbilled-export`).
// It runs dist/cli/local/cli.js, the command line bundled in one file by esbuild. When that file is missing (a
// fresh clone) or older than a file under src/, it is bundled again first (scripts/build.js --cli: no type check;
// that is `npm test` / `npm run lint`). No compiler runs in the path of a command.
// The bundle is compiled with V8's code cache (next to it, keyed by its size and time), which halves its load time.
const { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } = require('node:fs');
const Module = require('node:module');
const { dirname, join } = require('node:path');
const vm = require('node:vm');

const root = join(__dirname, '..');
const buildScript = join(root, 'scripts', 'build.js');
const cli = join(root, 'dist', 'cli', 'local', 'cli.js');

async function ensureBuilt() {
  if (!existsSync(buildScript) || !existsSync(join(root, 'src'))) return;
  const build = require(buildScript);
  if (!build.cliBuildIsStale()) return;
  try {
    require.resolve('esbuild');
  } catch {
    if (existsSync(cli)) return; // an installation without devDependencies runs what it has
    throw new Error('esbuild is missing: run "npm install" in the project folder.');
  }
  await build.buildCli();
}

/** Loads the bundle like require() does, with a V8 code cache; falls back to require() on any problem. */
function loadCli() {
  const { size, mtimeMs } = statSync(cli);
  // V8 checks a cache against the source's length only: the key below makes a rebuilt bundle miss it.
  const cacheName = `cli.js.${size}-${Math.round(mtimeMs)}.v8cache`;
  const cacheFile = join(dirname(cli), cacheName);
  try {
    const cachedData = existsSync(cacheFile) ? readFileSync(cacheFile) : undefined;
    const script = new vm.Script(Module.wrap(readFileSync(cli, 'utf8')), { filename: cli, cachedData });
    const module = new Module(cli, null);
    module.filename = cli;
    module.paths = Module._nodeModulePaths(dirname(cli));
    require.cache[cli] = module;
    script.runInThisContext().call(module.exports, module.exports, Module.createRequire(cli), module, cli, dirname(cli));
    module.loaded = true;
    if (cachedData === undefined || script.cachedDataRejected) {
      try {
        for (const name of readdirSync(dirname(cli))) {
          if (name.endsWith('.v8cache')) rmSync(join(dirname(cli), name), { force: true });
        }
        writeFileSync(`${cacheFile}.tmp`, script.createCachedData());
        renameSync(`${cacheFile}.tmp`, cacheFile);
      } catch {
        // a read-only installation runs without the cache
      }
    }
    return module.exports;
  } catch (error) {
    if (require.cache[cli]?.loaded) throw error;
    delete require.cache[cli];
    return require(cli);
  }
}

ensureBuilt().then(
  () => {
    if (!existsSync(cli)) {
      console.error('csp-unbilled-export is not built: run "npm install" in the project folder.');
      process.exit(1);
    }
    loadCli().runCli();
  },
  (error) => {
    console.error(`csp-unbilled-export could not be built: ${error instanceof Error ? error.message : error}`);
    process.exit(1);
  },
);
