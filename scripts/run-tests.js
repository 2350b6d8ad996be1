#!/usr/bin/env node
// Runs every compiled test file with Node's test runner (Node 20 takes no globs: files are listed here).
// Usage: node scripts/run-tests.js [unit|integration|<substring>...]

const { spawnSync } = require('node:child_process');
const { readdirSync, statSync, existsSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..', 'dist', 'test');
if (!existsSync(root)) {
  console.error('dist/test is missing: run "npm run build" first.');
  process.exit(1);
}

function walk(dir) {
  const out = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...walk(path));
    else if (entry.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk(root)
  .filter((file) => filters.length === 0 || filters.some((f) => file.toLowerCase().includes(f.toLowerCase())))
  .sort();
if (files.length === 0) {
  console.error(`No test files matched ${filters.join(', ') || '(all)'}.`);
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { ...process.env, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' },
});
process.exit(result.status ?? 1);
