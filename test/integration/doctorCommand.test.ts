import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CredentialUnavailableError, type TokenCredential } from '@azure/identity';
import {
  AccountSASPermissions,
  AccountSASResourceTypes,
  AccountSASServices,
  BlobServiceClient,
  generateAccountSASQueryParameters,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import { EMULATOR_DEV_TOKEN, emulatorDevToken } from '../../src/adapters/graph/devToken';
import { readAccessTokenClaims } from '../../src/adapters/graph/tokenClaims';
import { type PartnerBillingEmulator, startPartnerBillingEmulator } from '../../src/emulator/partnerBillingEmulator';
import { isExportError } from '../../src/errors';
import { DEV_STORE_ACCOUNT, exportSourceStorage, PARTNER_DEST_ACCOUNT } from '../../src/local/azurite';
import { describeFailure, formatHelp } from '../../src/local/commandLine';
import {
  commandDoctor,
  DOCTOR_COMMAND,
  type DoctorCheck,
  formatChecks,
  permissionCheck,
  runDoctor,
  storageFailure,
} from '../../src/local/doctorCommand';
import { uniqueName, useAzurite } from '../support/azurite';
import { cleanUp, spawnCli, tempWorkFolder } from '../support/cliProcess';
import { json, send } from '../support/http';

const azurite = useAzurite();

function tokenCredential(token: string): TokenCredential {
  return { getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600_000 }) };
}

function check(checks: DoctorCheck[], name: string): DoctorCheck {
  const found = checks.find((c) => c.name === name);
  assert.ok(found, `no "${name}" check in ${checks.map((c) => c.name).join(', ')}`);
  return found;
}

function failedNames(checks: DoctorCheck[]): string[] {
  return checks.filter((c) => !c.ok).map((c) => c.name);
}

/** A connection string whose account SAS allows only `permissions` on `services` (e.g. a read-only one). */
function sasConnection(account: { name: string; key: string }, permissions: string, services: string): string {
  const az = azurite();
  const sas = generateAccountSASQueryParameters(
    {
      expiresOn: new Date(Date.now() + 3600_000),
      permissions: AccountSASPermissions.parse(permissions),
      resourceTypes: AccountSASResourceTypes.parse('sco').toString(),
      services: AccountSASServices.parse(services).toString(),
    },
    new StorageSharedKeyCredential(account.name, account.key),
  ).toString();
  return (
    `BlobEndpoint=${az.blobEndpoint}/${account.name};QueueEndpoint=${az.queueEndpoint}/${account.name};` +
    `TableEndpoint=${az.tableEndpoint}/${account.name};SharedAccessSignature=${sas}`
  );
}

describe('doctor', () => {
  let emulator: PartnerBillingEmulator;
  let settings: () => Record<string, string>;

  before(async () => {
    emulator = await startPartnerBillingEmulator({ storage: exportSourceStorage(azurite()) });
    settings = () => ({
      AzureWebJobsStorage: azurite().connectionString(DEV_STORE_ACCOUNT.name),
      DESTINATION_STORAGE: azurite().connectionString(PARTNER_DEST_ACCOUNT.name),
      DESTINATION_CONTAINER: uniqueName('doctor'),
      GRAPH_BASE_URL: emulator.baseUrl,
      GRAPH_CA_CERT_FILE: emulator.caCertPath,
      EXPORT_CURRENCIES: 'USD',
    });
  });
  after(async () => {
    await emulator.stop();
  });

  it('passes every check against the embedded Azurite and emulator it starts when nothing is set, and exits 0', async () => {
    const lines: string[] = [];
    const notes: string[] = [];
    const code = await commandDoctor(['--json'], (line) => lines.push(line), {
      values: {},
      log: (line) => notes.push(line),
    });
    const report = JSON.parse(lines.at(-1) ?? '{}') as { ok: boolean; checks: DoctorCheck[] };
    assert.deepEqual(failedNames(report.checks), []);
    assert.equal(report.ok, true);
    assert.equal(code, 0);
    assert.ok(
      report.checks.every((c) => Object.keys(c).join() === 'name,ok,detail,fix' && c.fix === null),
      'each JSON check has name, ok, detail and fix (null when it passed)',
    );
    for (const name of [
      'settings',
      'Graph token',
      'Graph permission',
      'Graph call',
      'host queues',
      'host tables',
      'host blobs',
      'destination',
    ]) {
      check(report.checks, name);
    }
    assert.match(check(report.checks, 'Graph call').detail, /answered 404/);
    assert.ok(!`${lines.join('\n')}${notes.join('\n')}`.includes(EMULATOR_DEV_TOKEN), 'the token is never printed');
    assert.ok(notes.includes('All checks passed.'), 'with --json the text report goes to stderr');
  });

  it('leaves no probe blob behind in the destination', async () => {
    const values = settings();
    const checks = await runDoctor(values);
    assert.deepEqual(failedNames(checks), []);
    const container = BlobServiceClient.fromConnectionString(values.DESTINATION_STORAGE ?? '').getContainerClient(
      values.DESTINATION_CONTAINER ?? '',
    );
    const names: string[] = [];
    for await (const blob of container.listBlobsFlat()) names.push(blob.name);
    assert.deepEqual(names, []);
  });

  it('fails the permission check and the Graph call, with the admin consent fix, for a token without PartnerBilling.Read.All', async () => {
    const checks = await runDoctor(settings(), { graphCredential: tokenCredential(emulatorDevToken({ roles: [] })) });
    assert.deepEqual(failedNames(checks), ['Graph permission', 'Graph call']);
    const permission = check(checks, 'Graph permission');
    assert.match(permission.detail, /no PartnerBilling\.Read\.All in its roles claim \(roles: none\)/);
    assert.match(permission.fix ?? '', /application permission PartnerBilling\.Read\.All .*admin consent/);
    const call = check(checks, 'Graph call');
    assert.match(call.detail, /GRAPH_FORBIDDEN/);
    assert.match(call.fix ?? '', /PartnerBilling\.Read\.All with admin consent/);
    const text = formatChecks(checks);
    assert.ok(text.includes(`✗ Graph permission: ${permission.detail}`));
    assert.ok(text.includes(`    fix: ${permission.fix}`));
    assert.equal(text.at(-1), '2 check(s) failed.');
  });

  it('reports an unreadable GRAPH_CA_CERT_FILE as a failed Graph call with its fix, and still runs the other checks', async () => {
    const checks = await runDoctor({ ...settings(), GRAPH_CA_CERT_FILE: '/nonexistent/emulator-ca.pem' });
    assert.deepEqual(failedNames(checks), ['Graph call']);
    assert.match(
      check(checks, 'Graph call').detail,
      /GRAPH_CA_CERT_FILE \/nonexistent\/emulator-ca\.pem cannot be read \(ENOENT\)/,
    );
    assert.match(check(checks, 'Graph call').fix ?? '', /readable PEM file/);
    assert.equal(check(checks, 'destination').ok, true);
  });

  it("says to sign in as the app registration when the token is a user's (az login), which carries no application role", () => {
    const payload = Buffer.from(
      JSON.stringify({ aud: 'https://graph.microsoft.com', scp: 'User.Read', upn: 'ops@contoso.example', tid: 't' }),
    ).toString('base64url');
    const result = permissionCheck(readAccessTokenClaims(`e30.${payload}.sig`));
    assert.equal(result.ok, false);
    assert.match(result.detail, /user ops@contoso\.example/);
    assert.match(result.fix ?? '', /AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET/);
    assert.match(result.fix ?? '', /"az login" token never carries it/);
  });

  it('says UseDevelopmentStorage=true needs an Azurite of your own on the default ports when nothing answers there', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:10001'), { code: 'ECONNREFUSED' });
    const result = storageFailure(
      'host queues',
      'creating queue export-status',
      refused,
      'grant a role',
      'AzureWebJobsStorage',
      {
        kind: 'connectionString',
        connectionString: 'UseDevelopmentStorage=true',
      },
    );
    assert.equal(result.ok, false);
    assert.match(
      result.fix ?? '',
      /UseDevelopmentStorage=true needs your own Azurite on the default ports 10000-10002/,
    );
  });

  it('fails the Graph token check with the settings to set when no credential is configured, and skips the Graph checks after it', async () => {
    const none: TokenCredential = {
      getToken: async () => {
        throw new CredentialUnavailableError('EnvironmentCredential is unavailable. No underlying credential.');
      },
    };
    const checks = await runDoctor(settings(), { graphCredential: none });
    assert.deepEqual(failedNames(checks), ['Graph token', 'Graph permission', 'Graph call']);
    const token = check(checks, 'Graph token');
    assert.match(token.detail, /GRAPH_CREDENTIAL|No token for Microsoft Graph/);
    assert.match(
      token.fix ?? '',
      /AZURE_TENANT_ID .*AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH/,
    );
    assert.match(check(checks, 'Graph call').detail, /not made: no Graph token/);
  });

  it('fails the destination check with the Storage Blob Data Contributor fix when the destination may only be read', async () => {
    const values = settings();
    await BlobServiceClient.fromConnectionString(values.DESTINATION_STORAGE ?? '')
      .getContainerClient(values.DESTINATION_CONTAINER ?? '')
      .create();
    values.DESTINATION_STORAGE = sasConnection(PARTNER_DEST_ACCOUNT, 'rl', 'b');
    const checks = await runDoctor(values);
    assert.deepEqual(failedNames(checks), ['destination']);
    const destination = check(checks, 'destination');
    assert.match(destination.detail, /writing doctor\/probe-.*\.txt failed: 403/);
    assert.match(destination.fix ?? '', /Storage Blob Data Contributor/);
    assert.ok(!destination.detail.includes('sig='), 'no SAS in the report');
  });

  it('fails each host storage check with the role to grant when the host storage account may only be read', async () => {
    const values = settings();
    values.AzureWebJobsStorage = sasConnection(DEV_STORE_ACCOUNT, 'r', 'bqt');
    const checks = await runDoctor(values);
    assert.deepEqual(failedNames(checks), ['host queues', 'host tables', 'host blobs']);
    assert.match(check(checks, 'host queues').fix ?? '', /Storage Queue Data Contributor/);
    assert.match(check(checks, 'host tables').fix ?? '', /Storage Table Data Contributor/);
    assert.match(check(checks, 'host blobs').fix ?? '', /Storage Blob Data Owner/);
  });

  it('checks the Partner Center token and invoices when invoice discovery is on, and names the app registration fix when it is refused', async () => {
    const values = {
      ...settings(),
      EXPORT_INVOICE_DISCOVERY: 'partnerCenter',
      PARTNER_CENTER_BASE_URL: emulator.partnerCenterBaseUrl,
    };
    const good = await runDoctor(values);
    assert.deepEqual(failedNames(good), []);
    assert.match(
      check(good, 'Partner Center call').detail,
      /GET https:\/\/127\.0\.0\.1:\d+\/v1\/invoices answered 200/,
    );
    const refused = await runDoctor(values, { partnerCenterCredential: tokenCredential('not-a-partner-center-token') });
    assert.deepEqual(failedNames(refused), ['Partner Center call']);
    assert.match(
      check(refused, 'Partner Center call').fix ?? '',
      /Partner Center \(Account settings > App management\)/,
    );
    const off = await runDoctor(settings());
    assert.equal(
      off.some((c) => c.name.startsWith('Partner Center')),
      false,
    );
  });

  it('reports an invalid setting as a failed settings check with what is accepted, and exits 2', async () => {
    const lines: string[] = [];
    const code = await commandDoctor([], (line) => lines.push(line), {
      values: { ...settings(), EXPORT_CURRENCIES: 'US', EXPORT_ATTRIBUTE_SET: 'most' },
      log: () => undefined,
    });
    assert.equal(code, 2);
    assert.match(lines[0] ?? '', /^✗ settings: .*EXPORT_CURRENCIES.*EXPORT_ATTRIBUTE_SET/);
    assert.match(lines[1] ?? '', /^ {4}fix: /);
  });

  it('asks the credential the app builds for a Graph token and, with none configured, exits 2 with the settings to set (nothing leaves the machine)', async () => {
    const folder = tempWorkFolder('doctor');
    try {
      const values = settings();
      const cli = spawnCli(['doctor', '--json'], folder, {
        // Every connection but loopback throws: the managed identity probe and Microsoft Entra ID included.
        NODE_OPTIONS: `--require ${join(__dirname, '..', 'support', 'loopbackOnly.js')}`,
        AzureWebJobsStorage: values.AzureWebJobsStorage ?? '',
        DESTINATION_STORAGE: values.DESTINATION_STORAGE ?? '',
        GRAPH_BASE_URL: 'https://graph.microsoft.com/v1.0',
        EXPORT_CURRENCIES: 'USD',
        AZURE_TENANT_ID: '',
        AZURE_CLIENT_ID: '',
        AZURE_CLIENT_SECRET: '',
      });
      const { code } = await cli.exited;
      const report = JSON.parse(cli.stdout().trim().split('\n').at(-1) ?? '{}') as { checks: DoctorCheck[] };
      assert.equal(code, 2, cli.output());
      assert.deepEqual(failedNames(report.checks), ['Graph token', 'Graph permission', 'Graph call']);
      assert.match(check(report.checks, 'Graph token').fix ?? '', /AZURE_TENANT_ID/);
      assert.match(cli.output(), /✗ Graph token: .*\n {4}fix: /);
    } finally {
      cleanUp([folder]);
    }
  });

  it('answers --help with every check, its flags and an example', async () => {
    const lines: string[] = [];
    assert.equal(await commandDoctor(['--help'], (line) => lines.push(line)), 0);
    const help = lines.join('\n');
    assert.equal(help, formatHelp(DOCTOR_COMMAND));
    for (const word of ['--json', '--help', 'Examples:', 'npm run cli -- doctor', 'Graph permission', 'destination']) {
      assert.ok(help.includes(word), word);
    }
  });

  it('refuses an unknown flag or an argument with USAGE_INVALID naming the accepted flags, before any check starts', async () => {
    for (const [argv, pattern] of [
      [['--verbose'], /^doctor: unknown flag --verbose\. Accepted: --json, --help\. See "doctor --help"\.$/],
      [['now'], /^doctor: unexpected argument "now"\. Accepted: flags only: --json, --help\./],
      [['--json=yes'], /^doctor: --json takes no value\. Accepted: --json\./],
    ] as const) {
      const lines: string[] = [];
      await assert.rejects(
        commandDoctor([...argv], (line) => lines.push(line), { log: (line) => lines.push(line) }),
        (error: unknown) =>
          isExportError(error) &&
          error.code === 'USAGE_INVALID' &&
          pattern.test(error.message) &&
          describeFailure(error).exitCode === 2,
        argv.join(' '),
      );
      assert.deepEqual(lines, [], 'nothing printed: no Azurite, emulator or check was started');
    }
  });
});

describe('partner billing emulator tokens', () => {
  let emulator: PartnerBillingEmulator;
  before(async () => {
    emulator = await startPartnerBillingEmulator({ storage: exportSourceStorage(azurite()) });
  });
  after(async () => {
    await emulator.stop();
  });
  const operation = () => `${emulator.baseUrl}/reports/partners/billing/operations/${crypto.randomUUID()}`;
  const get = (token: string) =>
    send(operation(), { headers: { Authorization: `Bearer ${token}` }, ca: emulator.caCertPem });

  it('answers 403 Forbidden to a token it issued without PartnerBilling.Read.All, as Graph does for an app without the permission', async () => {
    const reply = await get(emulatorDevToken({ roles: ['User.Read.All'] }));
    assert.equal(reply.status, 403);
    assert.equal((json(reply).error as { code?: string }).code, 'Forbidden');
  });

  it('answers 404 to the development token for an operation that does not exist, and 401 to a token it did not issue', async () => {
    assert.equal((await get(EMULATOR_DEV_TOKEN)).status, 404);
    const foreign = emulatorDevToken({ roles: ['PartnerBilling.Read.All'], aud: 'https://management.azure.com' });
    assert.equal((await get(foreign)).status, 401);
    assert.equal((await get('csp-unbilled-export-emulator-development-token')).status, 401);
  });
});
