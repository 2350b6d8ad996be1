#!/usr/bin/env node
// npm run test:faults: the whole fault suite (dist/test/faults/*.test.js) at full scale.
// FAULTS_SCALE=reduced gives the seeded reduced set that `npm test` runs; FAULTS_SEED changes the sample;
// FAULTS_ONLY=<text> keeps the crash cases whose label contains <text>. Extra arguments narrow the files.

const { spawnSync } = require('node:child_process');
const { join, sep } = require('node:path');

const filters = process.argv.slice(2);
const args = filters.length === 0 ? [`${sep}faults${sep}`] : filters.map((f) => `${sep}faults${sep}${f}`);
const result = spawnSync(process.execPath, [join(__dirname, 'run-tests.js'), ...args], {
  stdio: 'inherit',
  env: { ...process.env, FAULTS_SCALE: process.env.FAULTS_SCALE ?? 'full' },
});
process.exit(result.status ?? 1);
