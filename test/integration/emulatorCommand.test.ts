import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { EMULATOR_DEV_TOKEN } from '../../src/adapters/graph/devToken';
import { MS_BILLING_ACCOUNT } from '../../src/local/azurite';
import { useAzurite } from '../support/azurite';

const MAIN = join(__dirname, '..', '..', 'src', 'emulator', 'main.js');
const RUN = `require(process.argv[1]).runEmulatorCommand(process.argv.slice(2)).catch((e) => { console.error(e.message); process.exitCode = 1; });`;

interface Running {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

const started: ChildProcess[] = [];

async function runCommand(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, ['-e', RUN, MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 30_000;
  while (!output.includes('Ctrl-C stops the emulator.')) {
    if (child.exitCode !== null || Date.now() > deadline) assert.fail(`the emulator command did not start:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { child, output: () => output, exited };
}

function field(output: string, name: string): string {
  const match = new RegExp(`${name}\\s+(\\S+)`).exec(output);
  assert.ok(match?.[1], `${name} is printed`);
  return match[1];
}

function call(
  url: string,
  ca: string | undefined,
  options: { method?: string; body?: string } = {},
): Promise<{ status: number; location: string | undefined; body: Buffer }> {
  const target = new URL(url);
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      target,
      {
        method: options.method ?? 'GET',
        agent: false,
        ca,
        headers: { Authorization: `Bearer ${EMULATOR_DEV_TOKEN}`, 'Content-Type': 'application/json' },
      },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, location: res.headers.location, body: Buffer.concat(chunks) }),
        );
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

function parse(body: Buffer): Record<string, unknown> {
  const value: unknown = JSON.parse(body.toString('utf8'));
  assert.ok(typeof value === 'object' && value !== null);
  return value as Record<string, unknown>;
}

/** POST, poll to the end, fetch the manifest (either dialect) and download the first blob. */
async function walkThrough(baseUrl: string, caPem: string): Promise<string[]> {
  const post = await call(`${baseUrl}/reports/partners/billing/usage/unbilled/export`, caPem, {
    method: 'POST',
    body: JSON.stringify({ currencyCode: 'USD', billingPeriod: 'current', attributeSet: 'full' }),
  });
  assert.equal(post.status, 202);
  assert.ok(post.location);
  let operation: Record<string, unknown> = {};
  for (let i = 0; i < 10; i++) {
    operation = parse((await call(post.location, caPem)).body);
    if (operation['status'] === 'succeeded') break;
  }
  assert.equal(operation['status'], 'succeeded');
  let manifest = operation['resourceLocation'] as Record<string, unknown> | undefined;
  if (manifest === undefined) {
    manifest = parse((await call(String(operation['resourceLocation@odata.navigationLink']), caPem)).body);
  }
  const blobs = manifest['blobs'] as Array<{ name: string }>;
  const blob = await call(
    `${String(manifest['rootDirectory'])}/${blobs[0]!.name}?${String(manifest['sasToken'])}`,
    undefined,
  );
  assert.equal(blob.status, 200);
  return gunzipSync(blob.body).toString('utf8').trimEnd().split('\n');
}

describe('csp-unbilled-export emulator (standalone command)', () => {
  const azurite = useAzurite();

  after(() => {
    for (const child of started) if (child.exitCode === null && child.pid !== undefined) child.kill('SIGKILL');
  });

  it('starts its own Azurite, prints the base URL, CA, token and curl walk-through, and stops cleanly on SIGTERM', async () => {
    const running = await runCommand([
      '--blob-count',
      '1',
      '--rows-per-blob',
      '25',
      '--polls',
      '1',
      '--retry-after',
      '0',
    ]);
    const output = running.output();
    const baseUrl = field(output, 'GRAPH_BASE_URL');
    const caPath = field(output, 'GRAPH_CA_CERT_FILE');
    const storage = field(output, 'export storage');
    assert.match(baseUrl, /^https:\/\/127\.0\.0\.1:\d+\/v1\.0$/);
    assert.ok(output.includes(EMULATOR_DEV_TOKEN));
    assert.ok(output.includes(`export CA='${caPath}'`));
    assert.ok(output.includes('curl -si --cacert "$CA" -X POST'));
    const lines = await walkThrough(baseUrl, readFileSync(caPath, 'utf8'));
    assert.equal(lines.length, 25);
    assert.ok(running.output().includes('emulator: POST /v1.0/reports/partners/billing/usage/unbilled/export -> 202'));
    assert.ok(!running.output().includes('sig='), 'no SAS signature is printed');

    running.child.kill('SIGTERM');
    assert.equal(await running.exited, 0);
    assert.match(running.output(), /Received SIGTERM: stopping\./);
    assert.equal(existsSync(caPath), false, 'the temporary CA file is removed');
    await assert.rejects(fetch(`${storage}?comp=list`), 'its Azurite is stopped');
  });

  it('uses an existing Azurite account and the documented dialect when asked, leaving that Azurite running', async () => {
    const endpoint = `${azurite().blobEndpoint}/${MS_BILLING_ACCOUNT.name}`;
    const running = await runCommand([
      '--azurite-blob-endpoint',
      endpoint,
      '--azurite-key',
      azurite().accountKey(MS_BILLING_ACCOUNT.name),
      '--dialect',
      'navigationLink',
      '--blob-count',
      '2',
      '--rows-per-blob',
      '10',
      '--quiet',
    ]);
    const output = running.output();
    assert.equal(field(output, 'export storage'), endpoint);
    assert.ok(output.includes('resourceLocation@odata.navigationLink'));
    const lines = await walkThrough(
      field(output, 'GRAPH_BASE_URL'),
      readFileSync(field(output, 'GRAPH_CA_CERT_FILE'), 'utf8'),
    );
    assert.equal(lines.length, 10);
    assert.ok(!running.output().includes('emulator: GET'), '--quiet prints no request lines');
    running.child.kill('SIGINT');
    assert.equal(await running.exited, 0);
    const stillServing = await fetch(`${azurite().blobEndpoint}/${MS_BILLING_ACCOUNT.name}?comp=list`);
    assert.equal(stillServing.status, 403, 'the given Azurite still answers (unauthenticated list: 403)');
  });

  it('exits with a clear message on a bad flag', async () => {
    const child = spawn(process.execPath, ['-e', RUN, MAIN, '--dialect', 'xml'], { stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(child);
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 1);
    assert.match(stderr, /--dialect: 'xml' is not accepted/);
  });
});
