import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TokenCredential } from '@azure/identity';
import { Agent } from 'undici';
import { CREDENTIAL_SETTINGS_HINT, credentialError } from '../adapters/graph/credentialError';
import { PARTNER_BILLING_ROLE } from '../adapters/graph/devToken';
import { GraphBillingExportApi } from '../adapters/graph/graphBillingExportApi';
import { PARTNER_CENTER_SCOPE } from '../adapters/graph/partnerCenterInvoiceApi';
import { type AccessTokenClaims, readAccessTokenClaims } from '../adapters/graph/tokenClaims';
import {
  createBlobServiceClient,
  createQueueServiceClient,
  createTableClient,
  describeError,
  storageErrorInfo,
} from '../adapters/storage/clients';
import { graphCredential, partnerCenterCredential } from '../composition';
import { type Config, loadConfig, type StorageConnection } from '../config';
import { classifyError, errorMessage } from '../errors';
import { QueueNames, TableNames } from '../names';
import { redact, safeUrl } from '../redact';
import { type CommandSpec, formatHelp, parseCommandLine, switchFlag } from './commandLine';
import { startEmbeddedServices } from './embedded';
import { readLocalSettings } from './settings';
import { installShutdown } from './shutdown';

/**
 * `doctor`: checks a configuration end to end before the first night, with the app's own credentials and clients:
 * the settings, a Graph token and its PartnerBilling.Read.All role, one authorised Graph call, the host storage
 * (queues, tables, blobs), a write into the destination, and the Partner Center token when invoice discovery is on.
 * Each check prints ✓ or ✗ with the fix. Exit code 0 when all pass, 2 (configuration) otherwise.
 */

/** The command's description: its --help text and its flags (commandLine.ts). */
export const DOCTOR_COMMAND: CommandSpec = {
  name: 'doctor',
  summary: 'checks the configuration end to end, each check with its fix',
  arguments: '[flags]',
  description: `Checks the configuration end to end with the identity the app uses, and prints each check as ✓ or ✗
with its fix:

  settings          every setting valid (the same validation as the app)
  Graph token       a token for Microsoft Graph from the app's credential (managed identity, or the
                    app registration of AZURE_TENANT_ID, AZURE_CLIENT_ID and a secret or certificate)
  Graph permission  the token's "roles" claim holds PartnerBilling.Read.All (admin consent granted)
  Graph call        GET of a partner billing operation that does not exist: 404 proves the call is
                    authorised, 401/403 that it is not
  host queues       the app's queues exist or can be created (AzureWebJobsStorage)
  host tables       the run ledger tables exist or can be created
  host blobs        the Functions host's blobs can be listed
  destination       a probe blob written under doctor/ in the destination container, then deleted
  Partner Center    with EXPORT_INVOICE_DISCOVERY=partnerCenter: a token and GET /invoices?size=1

Settings come from the environment, then local.settings.json's Values, as for "run". Absent storage
settings are checked against an Azurite started for the check (in memory), an absent GRAPH_BASE_URL
against the partner billing emulator: what "npm start" uses. Tokens are never printed.

The exit code is 0 when every check passed, 2 when a check failed (configuration or permission); see
docs/deploy.md.`,
  flags: [
    {
      name: 'json',
      description:
        'one JSON object as the last line: {"ok","checks":[{"name","ok","detail","fix"}]}\n(the text report goes to standard error)',
    },
  ],
  examples: [
    'npm run cli -- doctor',
    'AZURE_TENANT_ID=… AZURE_CLIENT_ID=… AZURE_CLIENT_SECRET=… GRAPH_BASE_URL=https://graph.microsoft.com/v1.0 \\\n    npm run cli -- doctor --json',
  ],
  exitCodes: `Exit codes: 0 every check passed; 2 a check failed (configuration or permission) or a bad flag; 1 the
embedded Azurite or emulator could not start; 130 / 143 interrupted (Ctrl-C / SIGTERM).`,
};

/** One line of the doctor's report. */
export interface DoctorCheck {
  name: string;
  ok: boolean;
  /** What was found (never a token, a key or a SAS). */
  detail: string;
  /** What to do when the check failed (null when it passed). */
  fix: string | null;
}

/** Replaceable credentials (tests); by default the ones the app builds (composition.ts). */
export interface DoctorOptions {
  graphCredential?: TokenCredential;
  partnerCenterCredential?: TokenCredential;
  /** Graph calls are retried this many times in-process on 429/5xx (default 1: the doctor answers quickly). */
  maxInlineRetries?: number;
}

/** The host storage setting (queues, ledger tables, the Functions host's blobs). */
const HOST = 'AzureWebJobsStorage';

const ROLE_FIX = {
  queues:
    'Grant the app identity "Storage Queue Data Contributor" on the host storage account (or fix AzureWebJobsStorage).',
  tables:
    'Grant the app identity "Storage Table Data Contributor" on the host storage account (or fix AzureWebJobsStorage).',
  blobs:
    'Grant the app identity "Storage Blob Data Owner" on the host storage account, which the Functions host needs (or fix AzureWebJobsStorage).',
  destination:
    'Grant the app identity "Storage Blob Data Contributor" on the destination account or container (or give DESTINATION_STORAGE a connection string that may write).',
};

const CA_FILE_FIX = 'Set GRAPH_CA_CERT_FILE to a readable PEM file (the emulator prints its path), or remove it.';

/** The PEM of GRAPH_CA_CERT_FILE; an Error naming the file when it cannot be read (a check's failure, not doctor's). */
function readCaFile(path: string | undefined): string | Error | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    return new Error(
      `GRAPH_CA_CERT_FILE ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? errorMessage(error)})`,
    );
  }
}

function pass(name: string, detail: string): DoctorCheck {
  return { name, ok: true, detail, fix: null };
}

function fail(name: string, detail: string, fix: string): DoctorCheck {
  return { name, ok: false, detail: redact(detail), fix: redact(fix) };
}

/** Who the token says it is: an application (client id, service principal, tenant) or a user. */
export function describeIdentity(claims: AccessTokenClaims): string {
  const tenant = claims.tenantId === undefined ? '' : ` in tenant ${claims.tenantId}`;
  if (claims.identityType === 'user') return `user ${claims.userName ?? claims.objectId ?? '(unnamed)'}${tenant}`;
  const principal = claims.objectId === undefined ? '' : ` (service principal ${claims.objectId})`;
  return `application ${claims.appId ?? '(no appid claim)'}${principal}${tenant}`;
}

/** The Graph permission check, from the token's claims. */
export function permissionCheck(claims: AccessTokenClaims | undefined): DoctorCheck {
  const name = 'Graph permission';
  if (claims === undefined) {
    return fail(
      name,
      'the Graph token is not a JWT, so its roles cannot be read',
      'Use a Microsoft Entra ID credential (managed identity or app registration); see docs/deploy.md#from-the-emulator-to-real-graph.',
    );
  }
  if (claims.roles.includes(PARTNER_BILLING_ROLE)) {
    return pass(name, `the token's roles claim holds ${PARTNER_BILLING_ROLE}`);
  }
  if (claims.identityType === 'user') {
    return fail(
      name,
      `the token is a user's (${describeIdentity(claims)}), with delegated scopes and no application roles: the app runs unattended with an application permission`,
      `Sign in as the app instead: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH) of an app registration in the partner tenant that was granted ${PARTNER_BILLING_ROLE} (an "az login" token never carries it). See docs/deploy.md#sign-in-locally.`,
    );
  }
  const roles = claims.roles.length === 0 ? 'none' : claims.roles.join(', ');
  return fail(
    name,
    `the token of ${describeIdentity(claims)} has no ${PARTNER_BILLING_ROLE} in its roles claim (roles: ${roles})`,
    `Add the Microsoft Graph application permission ${PARTNER_BILLING_ROLE} to this identity and grant admin consent in the partner tenant; then run doctor again (each run asks for a new token; the deployed app's managed identity may keep an older token for up to 24 hours). See docs/deploy.md#grant-the-graph-permission.`,
  );
}

/** A credential error's text without the settings hint, which the check prints as its fix. */
function withoutHint(message: string): string {
  return message.replace(CREDENTIAL_SETTINGS_HINT, '').trim();
}

async function getToken(credential: TokenCredential, scope: string, service: string, code: 'GRAPH_CREDENTIAL') {
  try {
    const token = await credential.getToken(scope);
    if (token === null) throw new Error('the credential returned no token');
    return { token: token.token };
  } catch (error) {
    return { error: credentialError(error, service, { config: code, transient: 'GRAPH_NETWORK' }) };
  }
}

async function graphChecks(config: Config, env: Record<string, string | undefined>, options: DoctorOptions) {
  const checks: DoctorCheck[] = [];
  const credential = options.graphCredential ?? graphCredential(config, env);
  const origin = new URL(config.graph.baseUrl).origin;
  const got = await getToken(credential, `${origin}/.default`, 'Microsoft Graph', 'GRAPH_CREDENTIAL');
  if (got.token === undefined) {
    checks.push(fail('Graph token', withoutHint(got.error.message), CREDENTIAL_SETTINGS_HINT));
    checks.push(fail('Graph permission', 'not checked: no Graph token', 'Fix the Graph token first.'));
    checks.push(fail('Graph call', 'not made: no Graph token', 'Fix the Graph token first.'));
    return checks;
  }
  const claims = readAccessTokenClaims(got.token);
  const who = claims === undefined ? 'an opaque token' : describeIdentity(claims);
  checks.push(
    pass('Graph token', `${config.graph.emulator ? 'emulator development token' : `token for ${origin}`} as ${who}`),
  );
  checks.push(permissionCheck(claims));

  // A cheap call the partner billing API authorises like an export: GET of an operation that does not exist.
  const operationUrl = `${config.graph.baseUrl.replace(/\/+$/, '')}/reports/partners/billing/operations/${randomUUID()}`;
  const ca = readCaFile(config.graph.caCertFile);
  if (ca instanceof Error) {
    checks.push(fail('Graph call', `not made: ${ca.message}`, CA_FILE_FIX));
    return checks;
  }
  const api = new GraphBillingExportApi({
    baseUrl: config.graph.baseUrl,
    credential: { getToken: async () => ({ token: got.token, expiresOnTimestamp: Date.now() + 60_000 }) },
    emulator: config.graph.emulator,
    caCertPem: ca,
    maxInlineRetries: options.maxInlineRetries ?? 1,
    maxInlineRetrySeconds: 5,
  });
  const call = `GET ${safeUrl(new URL(config.graph.baseUrl).pathname)}/reports/partners/billing/operations/{new id}`;
  try {
    await api.getOperation(operationUrl);
    checks.push(pass('Graph call', `${call} answered 200: the partner billing API accepts this identity`));
  } catch (error) {
    const classified = classifyError(error);
    if (classified.code === 'GRAPH_NOT_FOUND') {
      checks.push(
        pass('Graph call', `${call} answered 404 (no such operation): the partner billing API accepts this identity`),
      );
    } else if (classified.code === 'GRAPH_FORBIDDEN' || classified.code === 'GRAPH_UNAUTHORIZED') {
      checks.push(
        fail(
          'Graph call',
          `${call}: ${classified.code} ${errorMessage(classified)}`,
          `Grant the application permission ${PARTNER_BILLING_ROLE} with admin consent to ${claims === undefined ? 'this identity' : describeIdentity(claims)}, and make sure it belongs to the CSP partner tenant. See docs/deploy.md#grant-the-graph-permission.`,
        ),
      );
    } else {
      checks.push(
        fail(
          'Graph call',
          `${call}: ${classified.code} ${errorMessage(classified)}`,
          'See docs/errors.md for this code; check GRAPH_BASE_URL and the outbound access to it.',
        ),
      );
    }
  }
  return checks;
}

/** Does this connection name Azurite's default ports (`UseDevelopmentStorage=true`)? */
function developmentStorage(connection: StorageConnection): boolean {
  return connection.kind === 'connectionString' && /UseDevelopmentStorage=true/i.test(connection.connectionString);
}

/** A storage failure as a check line, with the role that would fix a 401/403. */
export function storageFailure(
  name: string,
  what: string,
  error: unknown,
  roleFix: string,
  setting: string,
  connection: StorageConnection,
): DoctorCheck {
  const info = storageErrorInfo(error);
  const refused = info.status === 401 || info.status === 403;
  const fix = refused
    ? roleFix
    : info.status === undefined && developmentStorage(connection)
      ? `${setting}=UseDevelopmentStorage=true needs your own Azurite on the default ports 10000-10002 (e.g. "npx azurite --skipApiVersionCheck"); or leave ${setting} unset and the command line starts one.`
      : info.status === undefined
        ? `The account did not answer: check ${setting} (a connection string on a closed port, a wrong account name, the network).`
        : `Check ${setting}; see docs/errors.md.`;
  return fail(name, `${what} failed: ${describeError(info)}`, fix);
}

async function queuesCheck(connection: StorageConnection, curation: boolean): Promise<DoctorCheck> {
  const names = [
    QueueNames.status,
    QueueNames.copy,
    QueueNames.statusPoison,
    QueueNames.copyPoison,
    ...(curation ? [QueueNames.curate, QueueNames.curatePoison] : []),
  ];
  const queues = createQueueServiceClient(connection);
  let queue: string | undefined;
  try {
    for (queue of names) await queues.getQueueClient(queue).createIfNotExists();
    return pass('host queues', `${names.join(', ')} exist`);
  } catch (error) {
    return storageFailure('host queues', `creating queue ${queue}`, error, ROLE_FIX.queues, HOST, connection);
  }
}

async function tablesCheck(connection: StorageConnection, curation: boolean): Promise<DoctorCheck> {
  const names = [
    TableNames.runs,
    TableNames.blobs,
    TableNames.locks,
    ...(curation ? [TableNames.curations, TableNames.curationFiles] : []),
  ];
  let table: string | undefined;
  try {
    for (table of names) {
      const client = createTableClient(connection, table);
      await client.createTable();
      // Creating proves little where the table already exists: reading it is what the ledger does.
      await client
        .listEntities({ queryOptions: { select: ['PartitionKey'] } })
        .byPage({ maxPageSize: 1 })
        .next();
    }
    return pass('host tables', `${names.join(', ')} exist and can be read`);
  } catch (error) {
    return storageFailure('host tables', `table ${table}`, error, ROLE_FIX.tables, HOST, connection);
  }
}

async function hostBlobsCheck(connection: StorageConnection): Promise<DoctorCheck> {
  try {
    await createBlobServiceClient(connection).listContainers().byPage({ maxPageSize: 1 }).next();
    return pass('host blobs', 'containers can be listed');
  } catch (error) {
    return storageFailure('host blobs', 'listing containers', error, ROLE_FIX.blobs, HOST, connection);
  }
}

async function destinationCheck(config: Config): Promise<DoctorCheck> {
  const container = createBlobServiceClient(config.destination.connection).getContainerClient(
    config.destination.container,
  );
  const probe = `doctor/probe-${randomUUID()}.txt`;
  const name = 'destination';
  let step = `reading container "${config.destination.container}"`;
  try {
    // As the app does: the container is created when missing (only then, so a container-scoped role suffices).
    if (!(await container.exists())) {
      step = `creating container "${config.destination.container}"`;
      await container.create();
    }
    step = `writing ${probe}`;
    const body = 'csp-unbilled-export doctor probe: safe to delete\n';
    await container.getBlockBlobClient(probe).upload(body, Buffer.byteLength(body));
    step = `deleting ${probe}`;
    await container.getBlockBlobClient(probe).delete();
    return pass(name, `wrote and deleted ${probe} in container "${config.destination.container}"`);
  } catch (error) {
    const setting =
      config.destination.connection.kind === 'identity' ? 'DESTINATION_STORAGE__blobServiceUri' : 'DESTINATION_STORAGE';
    return storageFailure(name, step, error, ROLE_FIX.destination, setting, config.destination.connection);
  }
}

async function partnerCenterChecks(
  config: Config,
  env: Record<string, string | undefined>,
  options: DoctorOptions,
): Promise<DoctorCheck[]> {
  const credential = options.partnerCenterCredential ?? partnerCenterCredential(config, env);
  const fix =
    'Register the app in Partner Center (Account settings > App management) and use its app-only credentials of the partner tenant; see docs/deploy.md#the-partner-center-side.';
  let token: string;
  try {
    const got = await credential.getToken(PARTNER_CENTER_SCOPE);
    if (got === null) throw new Error('the credential returned no token');
    token = got.token;
  } catch (error) {
    const classified = credentialError(error, 'the Partner Center API', {
      config: 'PARTNER_CENTER_FAILED',
      transient: 'PARTNER_CENTER_UNAVAILABLE',
    });
    return [
      fail('Partner Center token', withoutHint(classified.message), CREDENTIAL_SETTINGS_HINT),
      fail('Partner Center call', 'not made: no Partner Center token', 'Fix the Partner Center token first.'),
    ];
  }
  const checks = [
    pass('Partner Center token', config.partnerCenter.emulator ? 'emulator development token' : 'token obtained'),
  ];
  const url = `${config.partnerCenter.baseUrl.replace(/\/+$/, '')}/invoices?size=1&offset=0`;
  const ca = config.partnerCenter.emulator ? readCaFile(config.graph.caCertFile) : undefined;
  if (ca instanceof Error) {
    checks.push(fail('Partner Center call', `not made: ${ca.message}`, CA_FILE_FIX));
    return checks;
  }
  try {
    const response = await fetch(url, {
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
      signal: AbortSignal.timeout(30_000),
      ...(ca === undefined ? {} : ({ dispatcher: new Agent({ connect: { ca } }) } as object)),
    });
    await response.body?.cancel().catch(() => undefined);
    if (response.ok) {
      checks.push(pass('Partner Center call', `GET ${safeUrl(url)} answered ${response.status}`));
    } else {
      checks.push(
        fail(
          'Partner Center call',
          `GET ${safeUrl(url)} answered ${response.status}`,
          response.status === 401 || response.status === 403 ? fix : 'See docs/errors.md (PARTNER_CENTER_FAILED).',
        ),
      );
    }
  } catch (error) {
    checks.push(
      fail(
        'Partner Center call',
        `GET ${safeUrl(url)} failed: ${errorMessage(error)}`,
        'Check PARTNER_CENTER_BASE_URL and the outbound access to it.',
      ),
    );
  }
  return checks;
}

/** Runs every check against complete settings (embedded defaults already filled in). */
export async function runDoctor(
  env: Record<string, string | undefined>,
  options: DoctorOptions = {},
): Promise<DoctorCheck[]> {
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (error) {
    return [
      fail(
        'settings',
        errorMessage(error).replace(/\n/g, '; '),
        'Set each setting named above as accepted there (docs/configuration.md#settings; local.settings.sample.json).',
      ),
    ];
  }
  const checks: DoctorCheck[] = [
    pass(
      'settings',
      `valid: currencies ${config.currencies.join(',')}, datasets ${config.datasets.join(',')}, Graph ${safeUrl(config.graph.baseUrl)}${config.graph.emulator ? ' (emulator mode)' : ''}`,
    ),
  ];
  // The checks are independent: run together, an account that does not answer costs its retries once, not per check.
  const curation = config.curation.enabled;
  const results = await Promise.all([
    graphChecks(config, env, options),
    queuesCheck(config.hostStorage, curation).then((check) => [check]),
    tablesCheck(config.hostStorage, curation).then((check) => [check]),
    hostBlobsCheck(config.hostStorage).then((check) => [check]),
    destinationCheck(config).then((check) => [check]),
    config.invoiceDiscovery.mode === 'partnerCenter' ? partnerCenterChecks(config, env, options) : [],
  ]);
  for (const result of results) checks.push(...result);
  return checks;
}

/** The report as text lines: `✓ name: detail`, and under a failed check `    fix: …`. */
export function formatChecks(checks: DoctorCheck[]): string[] {
  const lines: string[] = [];
  for (const check of checks) {
    lines.push(`${check.ok ? '✓' : '✗'} ${check.name}: ${check.detail}`);
    if (!check.ok && check.fix !== null) lines.push(`    fix: ${check.fix}`);
  }
  const failed = checks.filter((check) => !check.ok).length;
  lines.push(failed === 0 ? 'All checks passed.' : `${failed} check(s) failed.`);
  return lines;
}

/** The settings whose absence starts an embedded service (the others it fills follow from them). */
const EMBEDDED_FOR = new Set(['AzureWebJobsStorage', 'DESTINATION_STORAGE', 'GRAPH_BASE_URL']);

/**
 * The `doctor` command: settings from the environment and local.settings.json, embedded Azurite and emulator for
 * what is absent (in memory: the data folder of a running command is left alone), the checks, the report.
 */
export async function commandDoctor(
  argv: string[],
  out: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
  options: DoctorOptions & {
    /** Settings instead of the environment and local.settings.json (tests). */
    values?: Record<string, string | undefined>;
    /** Notes and, with --json, the text report (default: stderr). */
    log?: (line: string) => void;
  } = {},
): Promise<number> {
  const parsed = parseCommandLine(DOCTOR_COMMAND, argv);
  if (parsed.help) {
    out(formatHelp(DOCTOR_COMMAND));
    return 0;
  }
  const json = switchFlag(parsed, 'json');
  const note = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const values = options.values ?? readLocalSettings().values;
  const shutdown = installShutdown(note);
  try {
    const embedded = await shutdown.step(
      () => startEmbeddedServices(values, { command: 'doctor', signal: shutdown.signal, log: note }),
      (services) => () => services.stop(),
    );
    const filled = Object.keys(embedded.filled);
    const checks: DoctorCheck[] = [];
    if (filled.length > 0) {
      checks.push(
        pass(
          'embedded defaults',
          `${filled.filter((key) => EMBEDDED_FOR.has(key)).join(', ')} not set: checked against ${[
            embedded.azurite === undefined ? undefined : 'an Azurite started for this check',
            embedded.emulator === undefined ? undefined : 'the partner billing emulator',
          ]
            .filter((part) => part !== undefined)
            .join(' and ')} (what "npm start" uses)`,
        ),
      );
    }
    checks.push(...(await runDoctor({ ...values, ...embedded.filled }, options)));
    if (json) {
      for (const line of formatChecks(checks)) note(line);
      out(JSON.stringify({ ok: checks.every((check) => check.ok), checks }));
    } else {
      for (const line of formatChecks(checks)) out(line);
    }
    return checks.every((check) => check.ok) ? 0 : 2;
  } finally {
    if (!shutdown.stopping) {
      await shutdown.stopAll();
      shutdown.dispose();
    }
  }
}
