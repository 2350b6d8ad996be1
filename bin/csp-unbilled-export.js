#!/usr/bin/env node
'use strict';
// The csp-unbilled-export command (also `npm start`, `npm run cli -- ...`, `npx csp-unbilled-export`).
// It runs dist/cli/local/cli.js, the command line bundled in one file by esbuild. When that file is missing (a
// fresh clone) or older than a file under src/, it is bundled again first (scripts/build.js --cli: no type check;
// that is `npm test` / `npm run lint`). No compiler runs in the path of a command.
const { existsSync } = require('node:fs');
const { join } = require('node:path');

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

ensureBuilt().then(
  () => {
    if (!existsSync(cli)) {
      console.error('csp-unbilled-export is not built: run "npm install" in the project folder.');
      process.exit(1);
    }
    require(cli).runCli();
  },
  (error) => {
    console.error(`csp-unbilled-export could not be built: ${error instanceof Error ? error.message : error}`);
    process.exit(1);
  },
);
