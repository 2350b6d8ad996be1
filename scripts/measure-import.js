#!/usr/bin/env node

// Cold start: the time to import the Functions entry in a fresh process, as the worker does (a stand-in
// @azure/functions-core registers the functions and hooks), against importing @azure/functions alone in the same
// run; each entry without and with APPLICATIONINSIGHTS_CONNECTION_STRING (always set in Azure; a loopback endpoint
// that is never called: nothing is sent at start-up). Each figure is the median of N fresh processes, measured
// alternately.
// Usage: node scripts/measure-import.js [--repeat N] [entry.js[,more.js...] ...]
//   default entries: dist/package/main.js (the bundle) and dist/src/{index,functions/*}.js (one file per source)

const { execFileSync } = require('node:child_process');
const { existsSync, readdirSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const args = process.argv.slice(2);
const repeatIndex = args.indexOf('--repeat');
const repeat = repeatIndex >= 0 ? Number(args[repeatIndex + 1]) : 15;
const explicit = args.filter((arg, i) => !arg.startsWith('--') && i !== repeatIndex + 1);

// Runs in the child: installs the stand-in, then times the requires (hrtime, around require only).
const CHILD = `
const Module = require('node:module');
const fakePath = '/__fake_azure_functions_core__.js';
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  return request === '@azure/functions-core' ? fakePath : resolve.call(this, request, ...rest);
};
let registered = 0;
const fake = new Module(fakePath);
fake.filename = fakePath;
fake.loaded = true;
fake.exports = {
  setProgrammingModel() {},
  registerFunction() { registered++; return { dispose() {} }; },
  registerHook() { return { dispose() {} }; },
  log() {},
};
require.cache[fakePath] = fake;
const files = JSON.parse(process.argv[1]);
const started = process.hrtime.bigint();
for (const file of files) require(file);
const ms = Number(process.hrtime.bigint() - started) / 1e6;
process.stdout.write(JSON.stringify({ ms, registered }));
`;

const TELEMETRY_ON = {
  APPLICATIONINSIGHTS_CONNECTION_STRING:
    'InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://127.0.0.1:9/',
};

function measure(files, extraEnv) {
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('APPLICATIONINSIGHTS_')) delete env[name];
  const out = execFileSync(process.execPath, ['-e', CHILD, JSON.stringify(files)], {
    cwd: root,
    encoding: 'utf8',
    env: { ...env, ...extraEnv },
  });
  return JSON.parse(out);
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const entries = [];
if (explicit.length > 0) {
  // An argument is one candidate: a file, or files separated by commas (loaded in that order, like a glob `main`).
  for (const arg of explicit) {
    entries.push({ name: arg, files: arg.split(',').map((file) => require('node:path').resolve(file)) });
  }
} else {
  const bundle = join(root, 'dist', 'package', 'main.js');
  if (existsSync(bundle)) entries.push({ name: 'dist/package/main.js (bundle)', files: [bundle] });
  const functionsDir = join(root, 'dist', 'src', 'functions');
  if (existsSync(functionsDir)) {
    entries.push({
      name: 'dist/src/{index,functions/*}.js (one file per source)',
      files: [
        join(root, 'dist', 'src', 'index.js'),
        ...readdirSync(functionsDir)
          .filter((f) => f.endsWith('.js'))
          .sort()
          .map((f) => join(functionsDir, f)),
      ],
    });
  }
}

const candidates = [
  { name: '@azure/functions alone', files: [require.resolve('@azure/functions', { paths: [root] })], env: {} },
  ...entries.flatMap((entry) => [
    { ...entry, env: {} },
    { ...entry, name: `${entry.name} + connection string`, env: TELEMETRY_ON },
  ]),
];
const samples = candidates.map(() => []);
const registered = candidates.map(() => 0);
for (let i = 0; i < repeat; i++) {
  candidates.forEach((candidate, index) => {
    const result = measure(candidate.files, candidate.env);
    samples[index].push(result.ms);
    registered[index] = result.registered;
  });
}
const base = median(samples[0]);
for (const [index, candidate] of candidates.entries()) {
  const ms = median(samples[index]);
  console.log(
    `${candidate.name.padEnd(76)} ${ms.toFixed(1).padStart(7)} ms  ratio ${(ms / base).toFixed(2).padStart(6)}  functions registered: ${registered[index]}`,
  );
}
console.log(`(median of ${repeat} fresh processes each, Node ${process.version})`);
