#!/usr/bin/env node

// Measures how fast the command line gets going (issue 9, item 1), from a built checkout:
//   1. Azurite alone: spawn to the three services listening (data in a temporary folder, as the command keeps
//      it in .azurite/);
//   2. `npm run cli -- run`: spawn to the first request that reaches a stand-in Graph (HTTPS, its own CA),
//      with the storage settings absent, so the command starts Azurite itself;
//   3. `npm run cli -- runs`: spawn to exit, against an Azurite that is already running.
// Usage: node scripts/measure-startup.js [--repeat N]   (prints one line per figure, medians of N runs)
// Needs dist/src/local/azurite.js and dist/src/emulator/certificate.js (npm run build or node scripts/build.js).

const { spawn } = require('node:child_process');
const { mkdtempSync, rmSync } = require('node:fs');
const { createServer } = require('node:https');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

const root = join(__dirname, '..');
const { startAzurite, DEV_STORE_ACCOUNT, PARTNER_DEST_ACCOUNT } = require(join(root, 'dist/src/local/azurite.js'));
const { createEmulatorCertificate } = require(join(root, 'dist/src/emulator/certificate.js'));

const repeatIndex = process.argv.indexOf('--repeat');
const repeat = repeatIndex > 0 ? Number(process.argv[repeatIndex + 1]) : 3;
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function baseEnv() {
  const env = { ...process.env, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' };
  for (const name of ['AzureWebJobsStorage', 'DESTINATION_STORAGE', 'GRAPH_BASE_URL', 'GRAPH_CA_CERT_FILE']) {
    delete env[name];
  }
  return env;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Stops a child and its whole process group (it was spawned detached), and waits for it. */
function stopGroup(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      resolve();
    }
  });
}

async function azuriteStart() {
  const location = mkdtempSync(join(tmpdir(), 'measure-azurite-'));
  const started = performance.now();
  const azurite = await startAzurite({ location });
  const ms = performance.now() - started;
  await azurite.stop();
  rmSync(location, { recursive: true, force: true });
  return ms;
}

async function toFirstGraphRequest(certificate) {
  let firstRequest;
  const server = createServer({ cert: certificate.serverCertPem, key: certificate.serverKeyPem }, (_req, res) => {
    if (firstRequest === undefined) firstRequest = performance.now();
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '60' });
    res.end('{"error":{"code":"measuring","message":"stand-in Graph"}}');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const env = {
    ...baseEnv(),
    GRAPH_BASE_URL: `https://127.0.0.1:${server.address().port}/v1.0`,
    GRAPH_CA_CERT_FILE: certificate.caCertPath,
    EXPORT_CURRENCIES: 'USD',
  };
  const started = performance.now();
  // npm runs scripts in the project folder, so the command keeps Azurite's data in its .azurite/: a currency of
  // its own per measurement keeps an earlier measurement's run (still in flight) from suppressing the export.
  const currency = `Q${String.fromCharCode(65 + Math.floor(Math.random() * 26), 65 + Math.floor(Math.random() * 26))}`;
  const child = spawn(
    npm,
    ['run', '--silent', 'cli', '--', 'run', '--currencies', currency, '--timeout-minutes', '1'],
    {
      cwd: root,
      env,
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const deadline = Date.now() + 120_000;
  while (firstRequest === undefined && child.exitCode === null && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await stopGroup(child);
  server.close();
  if (firstRequest === undefined) throw new Error(`no Graph request arrived; the command said:\n${stderr}`);
  return firstRequest - started;
}

async function runsListing(azurite) {
  const env = {
    ...baseEnv(),
    AzureWebJobsStorage: azurite.connectionString(DEV_STORE_ACCOUNT.name),
    DESTINATION_STORAGE: azurite.connectionString(PARTNER_DEST_ACCOUNT.name),
    GRAPH_BASE_URL: 'https://127.0.0.1:9/v1.0',
  };
  const started = performance.now();
  const child = spawn(npm, ['run', '--silent', 'cli', '--', 'runs', '--limit', '5'], {
    cwd: root,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`runs exited with ${code}:\n${stderr}`);
  return performance.now() - started;
}

async function main() {
  const certificate = await createEmulatorCertificate();
  const results = { azurite: [], firstGraph: [], runs: [] };
  try {
    for (let i = 0; i < repeat; i++) {
      results.azurite.push(await azuriteStart());
      results.firstGraph.push(await toFirstGraphRequest(certificate));
    }
    const azurite = await startAzurite();
    try {
      for (let i = 0; i < repeat; i++) results.runs.push(await runsListing(azurite));
    } finally {
      await azurite.stop();
    }
  } finally {
    await certificate.dispose();
  }
  const fmt = (values) => `${Math.round(median(values))} ms (runs: ${values.map((v) => Math.round(v)).join(', ')})`;
  console.log(`Azurite start (spawn to listening):          ${fmt(results.azurite)}`);
  console.log(`npm run cli -- run, spawn to first Graph:    ${fmt(results.firstGraph)}`);
  console.log(
    `  minus Azurite start:                        ${Math.round(median(results.firstGraph) - median(results.azurite))} ms (target <= 1500 ms)`,
  );
  console.log(`npm run cli -- runs, already running Azurite: ${fmt(results.runs)} (target < 1500 ms)`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
