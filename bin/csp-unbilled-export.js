#!/usr/bin/env node
'use strict';
// The csp-unbilled-export command: runs the compiled CLI (npm run build first, or use `npm run cli -- ...`).
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const cli = join(__dirname, '..', 'dist', 'src', 'local', 'cli.js');
if (!existsSync(cli)) {
  console.error('csp-unbilled-export is not built yet: run "npm run build" in the project folder first.');
  process.exit(1);
}
require(cli).runCli();
