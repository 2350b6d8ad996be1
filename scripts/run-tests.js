#!/usr/bin/env node
// Runs every compiled test file with Node's test runner, several files at a time (Node 20 takes no globs:
// files are listed here). Each file runs in its own `node --test` process, so files share no process.env,
// module state or port; a file's output is printed in one piece when it ends, with its duration.
//
// Usage: node scripts/run-tests.js [--concurrency=N] [unit|integration|faults|<substring>...]
//   TEST_CONCURRENCY=N does the same as --concurrency=N (1 runs the files one after the other).
//   Substrings are matched against the whole path of dist/test/**/*.test.js (case-insensitive).
// The slowest files start first: each run records the files' durations in dist/test/.durations.json.

const { spawn } = require('node:child_process');
const { readdirSync, readFileSync, statSync, existsSync, writeFileSync } = require('node:fs');
const { join, relative } = require('node:path');

// Most test files wait on Azurite, the emulator or child processes rather than on the CPU: on 2 cores
// 4 files at a time finished the suite fastest without a timing-sensitive test failing (docs/development.md).
const DEFAULT_CONCURRENCY = 4;

const root = join(__dirname, '..', 'dist', 'test');
const durationsFile = join(root, '.durations.json');
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

function parseArguments(argv) {
  let concurrency = process.env.TEST_CONCURRENCY;
  const filters = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg.startsWith('--concurrency=')) concurrency = arg.slice('--concurrency='.length);
    else if (arg === '--concurrency' || arg === '-j') concurrency = argv[++i];
    else filters.push(arg);
  }
  const n = concurrency === undefined || concurrency === '' ? DEFAULT_CONCURRENCY : Number(concurrency);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--concurrency (or TEST_CONCURRENCY) must be a whole number of 1 or more, not "${concurrency}".`);
    process.exit(2);
  }
  return { concurrency: n, filters };
}

function readDurations() {
  try {
    return JSON.parse(readFileSync(durationsFile, 'utf8'));
  } catch {
    return {};
  }
}

const { concurrency, filters } = parseArguments(process.argv.slice(2));
const names = (file) => relative(root, file).split('\\').join('/');
const files = walk(root).filter(
  (file) => filters.length === 0 || filters.some((f) => file.toLowerCase().includes(f.toLowerCase())),
);
if (files.length === 0) {
  console.error(`No test files matched ${filters.join(', ') || '(all)'}.`);
  process.exit(1);
}

// Longest first, so the slowest file does not start last; a file never timed before counts as slow
// when it starts processes (integration, faults) and as fast otherwise.
const known = readDurations();
const guess = (file) => known[names(file)] ?? (/[\\/](integration|faults)[\\/]/.test(file) ? 60_000 : 1_000);
const queue = [...files].sort((a, b) => guess(b) - guess(a) || a.localeCompare(b));

const env = { ...process.env, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' };
if (process.stdout.isTTY && env.FORCE_COLOR === undefined && env.NO_COLOR === undefined) env.FORCE_COLOR = '1';

const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
const started = Date.now();
const results = [];
const running = new Map();
let interrupted = false;
const counts = { tests: 0, pass: 0, fail: 0, cancelled: 0, skipped: 0, todo: 0 };

/** Adds a file's totals (the spec reporter's last lines: "ℹ tests 12", "ℹ pass 12", ...). */
function countTests(text) {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: colour codes of a terminal
  const plain = text.replace(/\u001b\[[0-9;]*m/g, '');
  for (const name of Object.keys(counts)) {
    const found = [...plain.matchAll(new RegExp(`^ℹ ${name} (\\d+)$`, 'gm'))].pop();
    if (found !== undefined) counts[name] += Number(found[1]);
  }
}

function runFile(file) {
  return new Promise((resolve) => {
    const begin = Date.now();
    const chunks = [];
    const child = spawn(process.execPath, ['--test', '--test-reporter=spec', file], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.set(child, { file, begin });
    child.stdout.on('data', (chunk) => chunks.push(chunk));
    child.stderr.on('data', (chunk) => chunks.push(chunk));
    child.on('close', (code, signal) => {
      running.delete(child);
      const ms = Date.now() - begin;
      const ok = code === 0;
      const done = results.length + 1;
      process.stdout.write(
        `\n# ${names(file)} (${seconds(ms)}, ${ok ? 'passed' : `FAILED: ${signal ?? `exit ${code}`}`})\n`,
      );
      const output = Buffer.concat(chunks);
      process.stdout.write(output);
      countTests(output.toString('utf8'));
      process.stdout.write(`# ${done}/${files.length} files done after ${seconds(Date.now() - started)}\n`);
      results.push({ file: names(file), ms, ok, interrupted });
      resolve();
    });
  });
}

async function worker() {
  while (queue.length > 0 && !interrupted) await runFile(queue.shift());
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    interrupted = true;
    for (const child of running.keys()) child.kill(signal);
  });
}

console.log(`Running ${files.length} test files, ${Math.min(concurrency, files.length)} at a time.`);
// Output comes when a file ends: say every minute what is still running, so a hang shows where it is.
const heartbeat = setInterval(() => {
  const now = Date.now();
  const list = [...running.values()].map((r) => `${names(r.file)} (${seconds(now - r.begin)})`).join(', ');
  if (list !== '') process.stdout.write(`# still running after ${seconds(now - started)}: ${list}\n`);
}, 60_000);
heartbeat.unref();
Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker)).then(() => {
  const wall = Date.now() - started;
  // Record what was measured (a partial run keeps the other files' figures) for the next run's order.
  const durations = { ...known };
  for (const r of results) if (!r.interrupted) durations[r.file] = r.ms;
  try {
    writeFileSync(durationsFile, `${JSON.stringify(durations, null, 1)}\n`);
  } catch {
    // Only the order of the next run depends on it.
  }
  const slowest = [...results].sort((a, b) => b.ms - a.ms).slice(0, 15);
  console.log(`\n# Slowest files (of ${results.length}):`);
  for (const r of slowest) console.log(`#   ${seconds(r.ms).padStart(8)}  ${r.file}`);
  const failed = results.filter((r) => !r.ok);
  const sum = results.reduce((total, r) => total + r.ms, 0);
  console.log(
    `# ${Object.entries(counts)
      .map(([name, n]) => `${name} ${n}`)
      .join(', ')}`,
  );
  console.log(
    `# ${results.length} files in ${seconds(wall)} (${seconds(sum)} of file time, ${Math.min(concurrency, files.length)} at a time); ` +
      `${failed.length === 0 ? 'all passed' : `${failed.length} FAILED: ${failed.map((r) => r.file).join(', ')}`}` +
      `${interrupted ? '; interrupted' : ''}`,
  );
  process.exit(failed.length > 0 || interrupted || results.length < files.length ? 1 : 0);
});
