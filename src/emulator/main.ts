import { parseArgs } from 'node:util';
import { EMULATOR_DEV_TOKEN } from '../adapters/graph/devToken';
import { type AzuriteInstance, exportSourceStorage, startAzurite } from '../local/azurite';
import { formatHelp } from '../local/commandLine';
import { EMULATOR_COMMAND } from '../local/emulatorCommand';
import {
  DEFAULT_SCENARIO,
  type EmulatorScenario,
  type PartnerBillingEmulator,
  startPartnerBillingEmulator,
} from './partnerBillingEmulator';

/** The emulator command's flags (the command line checks them against these first). */
export const EMULATOR_FLAGS = {
  port: { type: 'string' },
  'blob-count': { type: 'string' },
  'rows-per-blob': { type: 'string' },
  seed: { type: 'string' },
  dialect: { type: 'string' },
  polls: { type: 'string' },
  'retry-after': { type: 'string' },
  'sas-lifetime': { type: 'string' },
  outcome: { type: 'string' },
  'api-version': { type: 'string' },
  'azurite-blob-endpoint': { type: 'string' },
  'azurite-account': { type: 'string' },
  'azurite-key': { type: 'string' },
  quiet: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** Parsed flags of the emulator command. */
export interface EmulatorCommandOptions {
  port: number;
  scenario: Partial<EmulatorScenario>;
  apiVersion: 'v1.0' | 'beta';
  azurite: { blobEndpoint: string; accountName: string; accountKey: string } | undefined;
  quiet: boolean;
  help: boolean;
}

function integer(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(parsed) || parsed < min) {
    throw new Error(`--${name}: '${value}' is not accepted (an integer >= ${min}).`);
  }
  return parsed;
}

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  const match = allowed.find((candidate) => candidate === value);
  if (match === undefined) throw new Error(`--${name}: '${value}' is not accepted (${allowed.join(' or ')}).`);
  return match;
}

/** Parses the flags of `csp-unbilled-export emulator`; throws with the flag name on a bad value. */
export function parseEmulatorArgs(argv: string[]): EmulatorCommandOptions {
  const { values } = parseArgs({ args: argv, strict: true, allowPositionals: false, options: EMULATOR_FLAGS });
  const scenario: Partial<EmulatorScenario> = {};
  const set = <K extends keyof EmulatorScenario>(key: K, value: EmulatorScenario[K] | undefined): void => {
    if (value !== undefined) scenario[key] = value;
  };
  set('blobCount', integer('blob-count', values['blob-count'], 0));
  set('rowsPerBlob', integer('rows-per-blob', values['rows-per-blob'], 1));
  set('seed', integer('seed', values.seed, 0));
  set('dialect', oneOf('dialect', values.dialect, ['inline', 'navigationLink'] as const));
  set('pollsBeforeSuccess', integer('polls', values.polls, 0));
  set('retryAfterSeconds', integer('retry-after', values['retry-after'], 0));
  set('sasLifetimeSeconds', integer('sas-lifetime', values['sas-lifetime'], 1));
  set('outcome', oneOf('outcome', values.outcome, ['succeeded', 'noData', 'failed'] as const));
  if (scenario.dialect === 'navigationLink') scenario.odataType = true;

  let azurite: EmulatorCommandOptions['azurite'];
  const endpoint = values['azurite-blob-endpoint'];
  if (endpoint !== undefined) {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw new Error(`--azurite-blob-endpoint: '${endpoint}' is not a URL (e.g. http://127.0.0.1:10000/msbilling).`);
    }
    const accountName = values['azurite-account'] ?? url.pathname.split('/').filter(Boolean).pop();
    if (accountName === undefined) {
      throw new Error('--azurite-account is required when the endpoint has no account in its path.');
    }
    const accountKey = values['azurite-key'];
    if (accountKey === undefined) throw new Error('--azurite-key is required with --azurite-blob-endpoint.');
    azurite = { blobEndpoint: endpoint.replace(/\/+$/, ''), accountName, accountKey };
  } else if (values['azurite-account'] !== undefined || values['azurite-key'] !== undefined) {
    throw new Error('--azurite-account and --azurite-key need --azurite-blob-endpoint.');
  }
  return {
    port: integer('port', values.port, 0) ?? 0,
    scenario,
    apiVersion: oneOf('api-version', values['api-version'], ['v1.0', 'beta'] as const) ?? 'v1.0',
    azurite,
    quiet: values.quiet,
    help: values.help,
  };
}

/** The ready-to-paste curl walk-through for a running emulator. */
export function curlWalkthrough(
  emulator: Pick<PartnerBillingEmulator, 'baseUrl' | 'caCertPath' | 'token'>,
  dialect: string,
): string {
  const manifestStep =
    dialect === 'navigationLink'
      ? [
          '# 4. The operation names its manifest (documented dialect): fetch it.',
          `MANIFEST_URL=$(node -e 'console.log(JSON.parse(process.argv[1])["resourceLocation@odata.navigationLink"])' "$OP")`,
          'MANIFEST=$(curl -s --cacert "$CA" -H "Authorization: Bearer $TOKEN" "$MANIFEST_URL")',
        ]
      : [
          '# 4. The manifest is inline under resourceLocation (live dialect).',
          `MANIFEST=$(node -e 'console.log(JSON.stringify(JSON.parse(process.argv[1]).resourceLocation))' "$OP")`,
        ];
  return [
    `export CA='${emulator.caCertPath}'`,
    `export TOKEN='${emulator.token}'`,
    `export BASE='${emulator.baseUrl}'`,
    '',
    '# 1. Start an export: 202 Accepted, empty body, Location of the operation.',
    'curl -si --cacert "$CA" -X POST "$BASE/reports/partners/billing/usage/unbilled/export" \\',
    '  -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\',
    `  -d '{"currencyCode":"USD","billingPeriod":"current","attributeSet":"full"}' | tee /tmp/export-headers.txt`,
    `LOCATION=$(tr -d '\\r' < /tmp/export-headers.txt | awk 'tolower($1)=="location:" {print $2}')`,
    '',
    '# 2. Follow the operation (notStarted, running, then succeeded); honour Retry-After.',
    'curl -si --cacert "$CA" -H "Authorization: Bearer $TOKEN" "$LOCATION"',
    '',
    '# 3. Repeat until it succeeded, keeping the body.',
    `until OP=$(curl -s --cacert "$CA" -H "Authorization: Bearer $TOKEN" "$LOCATION") && echo "$OP" | grep -Eq '"status":"(succeeded|completed|failed)"'; do sleep 1; done; echo "$OP"`,
    '',
    ...manifestStep,
    '',
    '# 5. Download the first blob: {rootDirectory}/{name}?{sasToken} (plain HTTP to Azurite, no bearer token).',
    `BLOB_URL=$(node -e 'const m=JSON.parse(process.argv[1]); console.log(m.rootDirectory+"/"+m.blobs[0].name+"?"+m.sasToken)' "$MANIFEST")`,
    'curl -s "$BLOB_URL" | gunzip | head -n 2',
  ].join('\n');
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/** `csp-unbilled-export emulator [flags]`: runs the emulator (and, if needed, Azurite) until SIGINT/SIGTERM. */
export async function runEmulatorCommand(argv: string[]): Promise<void> {
  const options = parseEmulatorArgs(argv);
  if (options.help) {
    console.log(formatHelp(EMULATOR_COMMAND));
    return;
  }
  let azurite: AzuriteInstance | undefined;
  let emulator: PartnerBillingEmulator | undefined;
  try {
    let storage = options.azurite;
    if (storage === undefined) {
      azurite = await startAzurite();
      storage = exportSourceStorage(azurite);
    }
    emulator = await startPartnerBillingEmulator({
      storage,
      port: options.port,
      scenario: options.scenario,
      apiVersion: options.apiVersion,
      token: EMULATOR_DEV_TOKEN,
      log: options.quiet ? (): void => undefined : (line) => console.log(line),
    });
    const dialect = options.scenario.dialect ?? DEFAULT_SCENARIO.dialect;
    console.log(
      [
        'Partner billing emulator ready.',
        `  GRAPH_BASE_URL      ${emulator.baseUrl}`,
        `  GRAPH_CA_CERT_FILE  ${emulator.caCertPath}   (also usable as NODE_EXTRA_CA_CERTS or curl --cacert)`,
        `  bearer token        ${emulator.token}   (the fixed development token, not a secret)`,
        `  PARTNER_CENTER_BASE_URL ${emulator.partnerCenterBaseUrl}   (GET /invoices; token ${emulator.partnerCenterToken})`,
        `  invoices            ${emulator.invoices.map((i) => i.id).join(', ')}   (billed exports exist for these only)`,
        `  export storage      ${storage.blobEndpoint}${azurite === undefined ? '' : ' (Azurite started for this command, in memory)'}`,
        '',
        'Try it (bash):',
        '',
        curlWalkthrough(emulator, dialect),
        '',
        'Ctrl-C stops the emulator.',
      ].join('\n'),
    );
    const signal = await waitForSignal();
    console.log(`Received ${signal}: stopping.`);
  } finally {
    await emulator?.stop();
    await azurite?.stop();
  }
}
