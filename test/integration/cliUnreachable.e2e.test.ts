/**
 * Errors that say what to fix, through the real command line (`cli.js run` in a temporary folder): an endpoint that
 * cannot be reached, or a Graph credential that cannot be had, ends the command soon with the setting and the
 * endpoint named, instead of a bare ECONNREFUSED or retries for over an hour. Every process started here loads
 * test/support/loopbackOnly: nothing can leave the machine, whatever the credential tries.
 */
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type CliProcess, cleanUp, spawnCli, tempWorkFolder } from '../support/cliProcess';

const folders: string[] = [];
after(() => cleanUp(folders));

const GUARD = `--require ${join(__dirname, '..', 'support', 'loopbackOnly.js')}`;

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

/** `run --json --currencies USD` in a fresh folder; with `sample`, holding a copy of local.settings.sample.json. */
function runCommand(env: Record<string, string>, sample = false): CliProcess {
  const folder = tempWorkFolder('unreachable');
  folders.push(folder);
  if (sample) {
    copyFileSync(join(__dirname, '..', '..', '..', 'local.settings.sample.json'), join(folder, 'local.settings.json'));
  }
  return spawnCli(['run', '--json', '--currencies', 'USD'], folder, {
    NODE_OPTIONS: GUARD,
    EXPORT_CURRENCIES: 'USD',
    ...env,
  });
}

/** The exit code, failing when the command takes longer than `seconds`. */
async function exitWithin(cli: CliProcess, seconds: number): Promise<number | null> {
  const timer = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`still running after ${seconds} s:\n${cli.output()}`)), seconds * 1000).unref(),
  );
  const { code } = await Promise.race([cli.exited, timer]);
  return code;
}

function lastJson(output: string): { runs: Array<{ status: string; error: string | null }> } {
  const line = output
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{"runs"'));
  assert.ok(line !== undefined, `no --json summary:\n${output}`);
  return JSON.parse(line) as { runs: Array<{ status: string; error: string | null }> };
}

/** A connection string whose three endpoints are a closed loopback port (Azurite not running there). */
function closedStorage(port: number): string {
  const endpoint = (service: string) => `${service}Endpoint=http://127.0.0.1:${port}/devstoreaccount1`;
  return [
    'DefaultEndpointsProtocol=http',
    'AccountName=devstoreaccount1',
    'AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==',
    endpoint('Blob'),
    endpoint('Queue'),
    endpoint('Table'),
  ].join(';');
}

/** Blanks the credential settings this machine's environment may carry, so that no credential is configured. */
function withoutAzureCredentials(): Record<string, string> {
  const blank: Record<string, string> = {};
  for (const name of Object.keys(process.env)) {
    if (/^(AZURE_|MSI_|IDENTITY_)/.test(name)) blank[name] = '';
  }
  return blank;
}

describe('the command line names what to fix when an endpoint or the credential is not there', {
  concurrency: 3,
}, () => {
  it('gives up on an unreachable GRAPH_BASE_URL after 3 start attempts, naming the setting and the endpoint (exit 1)', async () => {
    const port = await closedPort();
    const cli = runCommand({ GRAPH_BASE_URL: `https://127.0.0.1:${port}/v1.0`, EXPORT_POLL_INITIAL_SECONDS: '1' });
    assert.equal(await exitWithin(cli, 90), 1);
    const output = cli.output();
    assert.ok(output.includes(`GRAPH_BASE_URL https://127.0.0.1:${port}/v1.0`), output);
    assert.ok(output.includes(`ECONNREFUSED 127.0.0.1:${port}`), output);
    const [run] = lastJson(output).runs;
    assert.equal(run?.status, 'failed');
    assert.match(run?.error ?? '', /after 3 attempts/);
  });

  it('names AzureWebJobsStorage and the endpoint when the host storage is on a closed port (exit 2)', async () => {
    const port = await closedPort();
    const graph = await closedPort();
    // As after copying the sample settings, whose storage is the Azurite default ports (here: a closed one).
    const cli = runCommand(
      {
        AzureWebJobsStorage: closedStorage(port),
        DESTINATION_STORAGE: closedStorage(port),
        GRAPH_BASE_URL: `https://127.0.0.1:${graph}/v1.0`,
      },
      true,
    );
    assert.equal(await exitWithin(cli, 90), 2);
    const output = cli.output();
    assert.match(
      output,
      /HOST_STORAGE_UNAVAILABLE: The host storage account \(AzureWebJobsStorage\) could not be reached/,
    );
    assert.ok(output.includes(`http://127.0.0.1:${port}`), output);
    assert.ok(!output.includes('AccountKey=Eby8'), 'no account key in the output');
  });

  it('fails the run at once with GRAPH_CREDENTIAL when no credential can give a Graph token (exit 1)', async () => {
    // Real Graph root, DefaultAzureCredential with nothing configured: its managed identity asks a closed loopback
    // endpoint (never 169.254.169.254), no developer tools are tried (AZURE_TOKEN_CREDENTIALS=prod), and the guard
    // refuses anything off the machine. The token is asked before any request, so Graph is never called.
    const identity = await closedPort();
    const cli = runCommand({
      ...withoutAzureCredentials(),
      GRAPH_BASE_URL: 'https://graph.microsoft.com/v1.0',
      AZURE_TOKEN_CREDENTIALS: 'prod',
      IDENTITY_ENDPOINT: `http://127.0.0.1:${identity}/msi/token`,
      IDENTITY_HEADER: 'test-identity-header',
    });
    assert.equal(await exitWithin(cli, 120), 1);
    const output = cli.output();
    assert.match(output, /Run failed \(GRAPH_CREDENTIAL\)/);
    for (const setting of ['AZURE_TENANT_ID', 'AZURE_CLIENT_ID', 'managed identity']) {
      assert.ok(output.includes(setting), `names ${setting}:\n${output}`);
    }
    assert.doesNotMatch(output, /retrying in/, 'not retried');
    assert.doesNotMatch(output, /loopbackOnly: refused/, 'nothing tried to leave the machine');
  });
});
