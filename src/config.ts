import { CronExpressionParser } from 'cron-parser';
import { ExportError } from './errors';
import { safeUrl } from './redact';

/** Billing periods accepted by Graph's unbilled export. */
export const BILLING_PERIODS = ['current', 'last'] as const;
export type BillingPeriod = (typeof BILLING_PERIODS)[number];

/** Attribute sets accepted by Graph's unbilled export. */
export const ATTRIBUTE_SETS = ['full', 'basic'] as const;
export type AttributeSet = (typeof ATTRIBUTE_SETS)[number];

/** The partner billing datasets Graph exports (issue 10; descriptions in src/datasets.ts). */
export const DATASET_IDS = [
  'unbilledUsage',
  'unbilledReconciliation',
  'billedUsage',
  'billedReconciliation',
  'billedAggregatedUsage',
] as const;
export type DatasetId = (typeof DATASET_IDS)[number];

/** How new invoices are found for the billed datasets. */
export const INVOICE_DISCOVERY_MODES = ['off', 'partnerCenter'] as const;
export type InvoiceDiscoveryMode = (typeof INVOICE_DISCOVERY_MODES)[number];

/** How to reach a storage account: a connection string, or endpoints reached with a (managed) identity. */
export type StorageConnection =
  | { kind: 'connectionString'; connectionString: string }
  | {
      kind: 'identity';
      blobServiceUri: string;
      queueServiceUri: string | undefined;
      tableServiceUri: string | undefined;
      /** Client id of a user-assigned managed identity; absent for the system-assigned one. */
      clientId: string | undefined;
    };

/** The validated configuration of the app. */
export interface Config {
  currencies: string[];
  billingPeriods: BillingPeriod[];
  attributeSet: AttributeSet;
  /** Six-field NCRONTAB, UTC; the Functions host resolves %EXPORT_SCHEDULE% itself, the local host uses this. */
  schedule: string;
  graph: {
    baseUrl: string;
    /** Loopback Graph root: fixed development token, loopback blob sources accepted (SPEC section 3). */
    emulator: boolean;
    /** PEM file trusted for the Graph endpoint in emulator mode (the emulator's self-signed certificate). */
    caCertFile: string | undefined;
  };
  hostStorage: StorageConnection;
  destination: {
    connection: StorageConnection;
    container: string;
    /** Folder of the unbilled usage dataset (DESTINATION_PREFIX). */
    prefix: string;
    /** Folder of every dataset (unbilledUsage is `prefix`). */
    prefixes: Record<DatasetId, string>;
  };
  /** Datasets the timer exports (EXPORT_DATASETS); the HTTP endpoint and the command line may narrow them. */
  datasets: DatasetId[];
  /** Finding new invoices for the billed datasets. */
  invoiceDiscovery: {
    mode: InvoiceDiscoveryMode;
    /** Invoices dated in the current month and this many months before it are considered. */
    months: number;
  };
  partnerCenter: {
    /** Partner Center API root, e.g. https://api.partnercenter.microsoft.com/v1. */
    baseUrl: string;
    /** Loopback root: the emulator's invoices list with the fixed development token. */
    emulator: boolean;
  };
  polling: {
    /** First delay when Graph gives no Retry-After, doubled on each poll. */
    initialDelaySeconds: number;
    /** Upper bound of the back-off delay. */
    maxDelaySeconds: number;
    /** A run whose operation has not finished after this long fails. */
    maxWaitHours: number;
  };
  /** The supervisor (superviseRuns): when a run's next step is overdue, and when it gives up. */
  supervision: {
    /** A run whose expected next step is this many minutes late is resumed. */
    stallMinutes: number;
    /** Resumes of one run before it fails with RUN_STALLED. */
    maxResumes: number;
    /** Hours a run may take in all (the maximum wait plus the copy allowance) before it fails with RUN_STALLED. */
    maxRunHours: number;
  };
  copy: {
    /** Blobs up to this size are copied with one Copy Blob From URL call. */
    singleCopyMaxBytes: number;
    /** Block size of the parallel Put Block From URL copy of larger blobs. */
    blockSizeBytes: number;
    /** Parallel block copies (and stream buffers) per blob. */
    concurrency: number;
  };
  /** The FinOps hub drop-in (FINOPS_HUB_STORAGE*): FOCUS files also go to the hub's ingestion container. Absent: off. */
  finOpsHub: FinOpsHubConfig | undefined;
  /** EXPORT_CURATION: whether a succeeded run's data is also written as typed Parquet and FOCUS (SPEC section 4.1). */
  curation: { enabled: boolean };
  appInsightsConnectionString: string | undefined;
}

/** Where the FOCUS files of each version are dropped for a FinOps hub. */
export interface FinOpsHubConfig {
  connection: StorageConnection;
  /**
   * The `{scope}` folder(s) under `ingestion/Costs/{yyyy}/{mm}/` (FINOPS_HUB_SCOPE), e.g. `csp/{partnerTenantId}`;
   * `{partnerTenantId}` is filled per version from the Graph manifest.
   */
  scope: string;
  /**
   * The datasets whose FOCUS versions go to the hub (FINOPS_HUB_DATASETS). The hub sums every folder, so a list that
   * always counts the same charges twice is refused; the other datasets' versions stay in `focus/` only.
   */
  datasets: DatasetId[];
  /** The hub endpoint is a loopback one (Azurite): the `ingestion` container is created if missing. */
  local: boolean;
}

/** FINOPS_HUB_SCOPE's default: the partner tenant's own folder, as the hub docs suggest for non-Azure scopes (`aws/{account-id}`). */
export const DEFAULT_FINOPS_HUB_SCOPE = 'csp/{partnerTenantId}';

/** FINOPS_HUB_DATASETS's default: unbilled usage alone, the daily view of consumption no other default dataset repeats. */
export const DEFAULT_FINOPS_HUB_DATASETS: readonly DatasetId[] = ['unbilledUsage'];

/** One app setting: its name, whether it is required, its default and its meaning (README and infra follow this list). */
export interface SettingInfo {
  name: string;
  required: boolean;
  default?: string;
  description: string;
}

const MiB = 1024 * 1024;

/** Hours a run may spend copying after its export succeeded, before the supervisor gives up on it. */
export const COPY_ALLOWANCE_HOURS = 6;

/** Every setting the code reads. The consistency tests check README, local.settings.sample.json and infra/ against it. */
export const SETTINGS: readonly SettingInfo[] = [
  { name: 'EXPORT_CURRENCIES', required: true, description: 'Comma-separated ISO 4217 codes, e.g. USD,EUR.' },
  {
    name: 'EXPORT_BILLING_PERIODS',
    required: false,
    default: 'current',
    description: 'current, last, or current,last.',
  },
  { name: 'EXPORT_ATTRIBUTE_SET', required: false, default: 'full', description: 'full or basic.' },
  {
    name: 'EXPORT_SCHEDULE',
    required: true,
    default: '0 0 6 * * *',
    description: 'Six-field NCRONTAB (UTC) of the daily timer.',
  },
  {
    name: 'GRAPH_BASE_URL',
    required: false,
    default: 'https://graph.microsoft.com/v1.0',
    description: 'Microsoft Graph root; a loopback URL selects emulator mode.',
  },
  {
    name: 'GRAPH_CA_CERT_FILE',
    required: false,
    description: 'Emulator mode only: PEM certificate of the partner billing emulator to trust.',
  },
  {
    name: 'AzureWebJobsStorage',
    required: true,
    description: 'Host storage (queues, run ledger): a connection string, or the __accountName / __*ServiceUri form.',
  },
  {
    name: 'DESTINATION_STORAGE',
    required: false,
    description: 'Connection string of the destination account (or use DESTINATION_STORAGE__blobServiceUri).',
  },
  {
    name: 'DESTINATION_STORAGE__blobServiceUri',
    required: false,
    description: 'Blob endpoint of the destination account, reached with the managed identity.',
  },
  {
    name: 'DESTINATION_STORAGE__clientId',
    required: false,
    description: 'Client id of the user-assigned identity used for the destination.',
  },
  { name: 'DESTINATION_CONTAINER', required: false, default: 'partner-billing', description: 'Destination container.' },
  {
    name: 'DESTINATION_PREFIX',
    required: false,
    default: 'unbilled-usage',
    description: 'Folder inside the container.',
  },
  {
    name: 'EXPORT_DATASETS',
    required: false,
    default: 'unbilledUsage',
    description:
      'Datasets exported: any of unbilledUsage, unbilledReconciliation, billedUsage, billedReconciliation, billedAggregatedUsage.',
  },
  {
    name: 'DESTINATION_PREFIX_UNBILLED_RECONCILIATION',
    required: false,
    default: 'unbilled-reconciliation',
    description: 'Folder of the unbilled invoice reconciliation dataset.',
  },
  {
    name: 'DESTINATION_PREFIX_BILLED_USAGE',
    required: false,
    default: 'billed-usage',
    description: 'Folder of the billed daily-rated usage dataset (per invoice).',
  },
  {
    name: 'DESTINATION_PREFIX_BILLED_RECONCILIATION',
    required: false,
    default: 'billed-reconciliation',
    description: 'Folder of the billed invoice reconciliation dataset (per invoice).',
  },
  {
    name: 'DESTINATION_PREFIX_BILLED_AGGREGATED_USAGE',
    required: false,
    default: 'billed-aggregated-usage',
    description: 'Folder of the billed aggregated usage dataset (per invoice).',
  },
  {
    name: 'EXPORT_CURATION',
    required: false,
    default: 'on',
    description:
      'on: after a run succeeds, its data is also written as typed Parquet (curated/) and FOCUS 1.2 (focus/); off: raw files only.',
  },
  {
    name: 'EXPORT_INVOICE_DISCOVERY',
    required: false,
    default: 'off',
    description: 'off, or partnerCenter: the timer finds new invoices for the billed datasets.',
  },
  {
    name: 'EXPORT_INVOICE_MONTHS',
    required: false,
    default: '3',
    description: 'Invoice discovery looks at invoices of the current month and this many months before.',
  },
  {
    name: 'PARTNER_CENTER_BASE_URL',
    required: false,
    default: 'https://api.partnercenter.microsoft.com/v1',
    description: 'Partner Center API root for invoice discovery; a loopback URL selects emulator mode.',
  },
  {
    name: 'EXPORT_POLL_INITIAL_SECONDS',
    required: false,
    default: '30',
    description: 'First status-check delay without Retry-After (doubles each poll).',
  },
  {
    name: 'EXPORT_POLL_MAX_SECONDS',
    required: false,
    default: '900',
    description: 'Largest delay between status checks.',
  },
  {
    name: 'EXPORT_MAX_WAIT_HOURS',
    required: false,
    default: '6',
    description: 'A run whose Graph operation has not finished after this many hours fails.',
  },
  {
    name: 'EXPORT_STALL_MINUTES',
    required: false,
    default: '30',
    description: 'superviseRuns resumes a run whose expected next step is this many minutes overdue.',
  },
  {
    name: 'EXPORT_MAX_RESUMES',
    required: false,
    default: '3',
    description: 'Resumes of one run by superviseRuns before it fails with RUN_STALLED.',
  },
  {
    name: 'EXPORT_COPY_SINGLE_MAX_MIB',
    required: false,
    default: '256',
    description: 'Blobs up to this size use one Copy Blob From URL (Azure allows at most 256).',
  },
  {
    name: 'EXPORT_COPY_BLOCK_MIB',
    required: false,
    default: '16',
    description: 'Block size of the parallel Put Block From URL copy of larger blobs.',
  },
  {
    name: 'EXPORT_COPY_CONCURRENCY',
    required: false,
    default: '32',
    description: 'Parallel Put Block From URL calls per blob (the streaming fallback uses at most 8 buffers).',
  },
  {
    name: 'FINOPS_HUB_STORAGE',
    required: false,
    description:
      "Connection string of a FinOps hub's storage account (or use FINOPS_HUB_STORAGE__blobServiceUri); unset: no hub drop-in.",
  },
  {
    name: 'FINOPS_HUB_STORAGE__blobServiceUri',
    required: false,
    description: "Blob endpoint of a FinOps hub's storage account, reached with the managed identity.",
  },
  {
    name: 'FINOPS_HUB_STORAGE__clientId',
    required: false,
    description: 'Client id of the user-assigned identity used for the FinOps hub.',
  },
  {
    name: 'FINOPS_HUB_SCOPE',
    required: false,
    default: DEFAULT_FINOPS_HUB_SCOPE,
    description:
      'Scope folder(s) of our data in the hub: ingestion/Costs/{yyyy}/{mm}/{scope}/…; {partnerTenantId} is filled in.',
  },
  {
    name: 'FINOPS_HUB_DATASETS',
    required: false,
    default: DEFAULT_FINOPS_HUB_DATASETS.join(','),
    description:
      'Datasets whose FOCUS data go to the hub, comma-separated; pairs that count the same charges twice are refused.',
  },
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING',
    required: false,
    description: 'Application Insights connection string; telemetry is off without it.',
  },
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
    required: false,
    description:
      'Authorization=AAD;ClientId=<identity client id>: send telemetry with Microsoft Entra ID (local auth disabled).',
  },
  {
    name: 'AZURE_CLIENT_ID',
    required: false,
    description: 'Standard @azure/identity setting: the identity (or app registration) used for Graph.',
  },
];

/** Reads a setting: absent and blank are the same. */
function read(env: Record<string, string | undefined>, name: string): string | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
}

/** Is the host of this URL a loopback address (emulator mode)? */
export function isLoopbackUrl(url: string): boolean {
  try {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '').toLowerCase();
    return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
  } catch {
    return false;
  }
}

/** Checks a six-field NCRONTAB expression; returns a problem description or undefined. */
export function checkSchedule(expression: string): string | undefined {
  const fields = expression.split(/\s+/).filter((f) => f !== '');
  if (fields.length !== 6) {
    return `has ${fields.length} fields; a six-field NCRONTAB expression "{second} {minute} {hour} {day} {month} {day-of-week}" (UTC) is accepted, e.g. "0 0 6 * * *"`;
  }
  try {
    CronExpressionParser.parse(expression, { tz: 'UTC' });
    return undefined;
  } catch (error) {
    return `is not a valid NCRONTAB expression (${error instanceof Error ? error.message : String(error)}); e.g. "0 0 6 * * *"`;
  }
}

/** Parses a comma-separated currency list: ISO 4217 codes, upper-cased. Problems are appended to `problems`. */
export function parseCurrencies(value: string, setting: string, problems: string[]): string[] {
  const currencies: string[] = [];
  for (const item of list(value)) {
    const code = item.toUpperCase();
    if (!/^[A-Z]{3}$/.test(code)) {
      problems.push(
        `${setting}: "${item}" is not a currency code; three-letter ISO 4217 codes are accepted, e.g. USD,EUR`,
      );
    } else if (!currencies.includes(code)) {
      currencies.push(code);
    }
  }
  if (currencies.length === 0 && !problems.some((p) => p.startsWith(setting))) {
    problems.push(`${setting}: no currency given; comma-separated ISO 4217 codes are accepted, e.g. USD,EUR`);
  }
  return currencies;
}

/** ISO 4217 currency codes as Node knows them (empty on a Node built without full ICU: then any code passes). */
const ISO_CURRENCIES: ReadonlySet<string> = new Set(
  typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('currency') : [],
);

/**
 * Refuses codes that are three letters but no ISO 4217 currency (`XYZ`): Graph would be asked for an export of a
 * currency that does not exist, and a `currency=XYZ` folder would land. Returns the codes.
 */
export function checkIsoCurrencies(codes: string[], setting: string, problems: string[]): string[] {
  if (ISO_CURRENCIES.size === 0) return codes;
  for (const code of codes) {
    if (!ISO_CURRENCIES.has(code)) {
      problems.push(
        `${setting}: "${code}" is not an ISO 4217 currency code; accepted: codes such as USD, EUR, GBP, JPY`,
      );
    }
  }
  return codes;
}

/** Parses a comma-separated billing period list. */
export function parseBillingPeriods(value: string, setting: string, problems: string[]): BillingPeriod[] {
  const periods: BillingPeriod[] = [];
  for (const item of list(value)) {
    const period = item.toLowerCase();
    if (!(BILLING_PERIODS as readonly string[]).includes(period)) {
      problems.push(`${setting}: "${item}" is not a billing period; accepted: current, last, or current,last`);
    } else if (!periods.includes(period as BillingPeriod)) {
      periods.push(period as BillingPeriod);
    }
  }
  if (periods.length === 0 && !problems.some((p) => p.startsWith(setting))) {
    problems.push(`${setting}: no billing period given; accepted: current, last, or current,last`);
  }
  return periods;
}

/** Parses an attribute set. */
export function parseAttributeSet(value: string, setting: string, problems: string[]): AttributeSet {
  const set = value.toLowerCase();
  if (!(ATTRIBUTE_SETS as readonly string[]).includes(set)) {
    problems.push(`${setting}: "${value}" is not an attribute set; accepted: full or basic`);
    return 'full';
  }
  return set as AttributeSet;
}

/** Parses a comma-separated dataset list. */
export function parseDatasets(value: string, setting: string, problems: string[]): DatasetId[] {
  const accepted = `accepted: any of ${DATASET_IDS.join(', ')}, comma-separated`;
  const datasets: DatasetId[] = [];
  for (const item of list(value)) {
    const id = DATASET_IDS.find((d) => d.toLowerCase() === item.toLowerCase());
    if (id === undefined) problems.push(`${setting}: "${item}" is not a dataset; ${accepted}`);
    else if (!datasets.includes(id)) datasets.push(id);
  }
  if (datasets.length === 0 && !problems.some((p) => p.startsWith(setting))) {
    problems.push(`${setting}: no dataset given; ${accepted}`);
  }
  return datasets;
}

/** Invoice ids as Partner Center writes them (e.g. G000000001, D02005YFHI): letters and digits, up to 32. */
export function isInvoiceId(value: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9-]{0,31}$/.test(value);
}

/** Parses a comma-separated invoice id list (upper-cased). */
export function parseInvoiceIds(value: string, setting: string, problems: string[]): string[] {
  const ids: string[] = [];
  for (const item of list(value)) {
    if (!isInvoiceId(item)) {
      problems.push(`${setting}: "${item}" is not an invoice id; letters and digits are accepted, e.g. G000000001`);
    } else if (!ids.includes(item.toUpperCase())) {
      ids.push(item.toUpperCase());
    }
  }
  return ids;
}

function folderPath(value: string, setting: string, problems: string[]): string {
  const prefix = value.replace(/^\/+|\/+$/g, '');
  if (prefix === '' || prefix.split('/').some((s) => s === '' || s === '.' || s === '..') || /[\\?#]/.test(prefix)) {
    problems.push(
      `${setting}: "${prefix}" is not a folder path; non-empty segments separated by "/", no "..", "\\", "?" or "#"`,
    );
  }
  return prefix;
}

function checkUrl(value: string, setting: string, problems: string[], what: string): string {
  try {
    const url = new URL(value);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('not http(s)');
    if (url.search !== '') {
      problems.push(`${setting}: must not carry a query string (no SAS tokens in settings); ${what}`);
    }
    return value.replace(/\/+$/, '');
  } catch {
    problems.push(`${setting}: "${value}" is not a valid URL; ${what}`);
    return value;
  }
}

function number(
  env: Record<string, string | undefined>,
  name: string,
  fallback: number,
  min: number,
  max: number,
  problems: string[],
  integer = true,
): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
    problems.push(`${name}: "${raw}" is not accepted; a ${integer ? 'whole ' : ''}number from ${min} to ${max}`);
    return fallback;
  }
  return value;
}

/** Reads a storage connection in the Functions form: `NAME` (connection string) or `NAME__*` (identity). */
function storageConnection(
  env: Record<string, string | undefined>,
  name: string,
  problems: string[],
  needsQueueAndTable: boolean,
): StorageConnection | undefined {
  const connectionString = read(env, name);
  const accountName = read(env, `${name}__accountName`);
  const blobUri = read(env, `${name}__blobServiceUri`);
  const queueUri = read(env, `${name}__queueServiceUri`);
  const tableUri = read(env, `${name}__tableServiceUri`);
  const clientId = read(env, `${name}__clientId`);
  const identityGiven = accountName !== undefined || blobUri !== undefined;
  if (connectionString !== undefined && identityGiven) {
    problems.push(
      `${name}: both a connection string and ${name}__accountName/__blobServiceUri are set; set exactly one of the two forms`,
    );
    return undefined;
  }
  if (connectionString !== undefined) {
    if (!/AccountName=|BlobEndpoint=|UseDevelopmentStorage=true/i.test(connectionString)) {
      problems.push(
        `${name}: is not a storage connection string; accepted: "DefaultEndpointsProtocol=...;AccountName=...;AccountKey=..." or "UseDevelopmentStorage=true"`,
      );
      return undefined;
    }
    return { kind: 'connectionString', connectionString };
  }
  if (!identityGiven) return undefined;
  const what = 'the https endpoint of the storage account is accepted';
  const blobServiceUri =
    blobUri !== undefined
      ? checkUrl(blobUri, `${name}__blobServiceUri`, problems, what)
      : `https://${accountName}.blob.core.windows.net`;
  const queueServiceUri =
    queueUri !== undefined
      ? checkUrl(queueUri, `${name}__queueServiceUri`, problems, what)
      : accountName !== undefined
        ? `https://${accountName}.queue.core.windows.net`
        : undefined;
  const tableServiceUri =
    tableUri !== undefined
      ? checkUrl(tableUri, `${name}__tableServiceUri`, problems, what)
      : accountName !== undefined
        ? `https://${accountName}.table.core.windows.net`
        : undefined;
  if (accountName !== undefined && !/^[a-z0-9]{3,24}$/.test(accountName)) {
    problems.push(
      `${name}__accountName: "${accountName}" is not a storage account name; 3-24 lowercase letters and digits`,
    );
  }
  if (needsQueueAndTable && (queueServiceUri === undefined || tableServiceUri === undefined)) {
    problems.push(
      `${name}: the identity form needs ${name}__accountName, or all of ${name}__blobServiceUri, __queueServiceUri and __tableServiceUri`,
    );
  }
  return { kind: 'identity', blobServiceUri, queueServiceUri, tableServiceUri, clientId };
}

/** The blob endpoint a connection reaches (a connection string's BlobEndpoint, or Azurite's for UseDevelopmentStorage). */
function blobEndpointOf(connection: StorageConnection): string | undefined {
  if (connection.kind === 'identity') return connection.blobServiceUri;
  const parts = new Map<string, string>();
  for (const part of connection.connectionString.split(';')) {
    const at = part.indexOf('=');
    if (at > 0) parts.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim());
  }
  if (parts.get('usedevelopmentstorage')?.toLowerCase() === 'true') return 'http://127.0.0.1:10000/devstoreaccount1';
  return parts.get('blobendpoint');
}

/** Checks FINOPS_HUB_SCOPE: folder segments of letters, digits, `.`, `-`, `_`, or the `{partnerTenantId}` placeholder. */
export function checkHubScope(scope: string): string | undefined {
  const segments = scope.split('/');
  if (segments.length > 8 || segments.some((s) => s === '' || s === '.' || s === '..')) {
    return 'is not a folder path; one to eight non-empty segments separated by "/", without leading or trailing "/"';
  }
  const bad = segments.find((s) => s !== '{partnerTenantId}' && !/^[A-Za-z0-9._-]{1,64}$/.test(s));
  if (bad !== undefined) {
    return `has the segment "${bad}"; segments are letters, digits, ".", "-" and "_", or the placeholder {partnerTenantId}`;
  }
  // The hub reads the month of a folder with the pattern Costs/yyyy/mm(/dd)?: a first segment of two digits would be
  // taken for a day, and the folder aged out by day instead of by month.
  if (/^\d{2}$/.test(segments[0] ?? '')) return 'starts with a two-digit segment, which the hub would read as a day';
  if (segments.some((s) => s.toLowerCase() === 'manifest.json' || s.includes('__'))) {
    return 'must not contain "__" or a segment named manifest.json (the hub gives both a meaning)';
  }
  return undefined;
}

/**
 * Pairs of datasets the hub must not hold together: the hub sums every folder, and each pair carries the same charges
 * of every month (docs/data.md "Do not add usage and reconciliation together"). Unbilled and billed datasets are
 * allowed together: they cover different months, except that an invoiced month keeps its last unbilled version.
 */
const HUB_DOUBLE_COUNTING_PAIRS: readonly (readonly [DatasetId, DatasetId, string])[] = [
  ['unbilledUsage', 'unbilledReconciliation', "reconciliation's usage-based lines restate the usage"],
  ['billedUsage', 'billedReconciliation', "reconciliation's usage-based lines restate the usage"],
  ['billedAggregatedUsage', 'billedReconciliation', "reconciliation's usage-based lines restate the usage"],
  ['billedUsage', 'billedAggregatedUsage', 'aggregated usage restates the same invoice at another grain'],
];

/** Checks FINOPS_HUB_DATASETS: dataset ids, and no pair that counts the same charges twice in the hub. */
function parseHubDatasets(value: string, problems: string[]): DatasetId[] {
  const datasets = parseDatasets(value, 'FINOPS_HUB_DATASETS', problems);
  for (const [first, second, why] of HUB_DOUBLE_COUNTING_PAIRS) {
    if (datasets.includes(first) && datasets.includes(second)) {
      problems.push(
        `FINOPS_HUB_DATASETS: ${first} and ${second} together count the same charges twice in the hub (${why}); keep one of the two`,
      );
    }
  }
  return datasets;
}

/**
 * Reads the FinOps hub drop-in settings: off (undefined) when neither FINOPS_HUB_STORAGE form is set. A loopback
 * (Azurite) hub is accepted in emulator mode only; an identity-based endpoint must use https (bearer tokens over TLS).
 */
function finOpsHubConfig(
  env: Record<string, string | undefined>,
  emulator: boolean,
  problems: string[],
): FinOpsHubConfig | undefined {
  const before = problems.length;
  const connection = storageConnection(env, 'FINOPS_HUB_STORAGE', problems, false);
  const scope = (read(env, 'FINOPS_HUB_SCOPE') ?? DEFAULT_FINOPS_HUB_SCOPE).replace(/^\/+|\/+$/g, '');
  if (connection === undefined) {
    if (problems.length === before && read(env, 'FINOPS_HUB_STORAGE__clientId') !== undefined) {
      problems.push(
        'FINOPS_HUB_STORAGE__clientId: set without FINOPS_HUB_STORAGE__blobServiceUri; set both, or neither',
      );
    }
    return undefined;
  }
  const scopeProblem = checkHubScope(scope);
  if (scopeProblem !== undefined) problems.push(`FINOPS_HUB_SCOPE: "${scope}" ${scopeProblem}`);
  const datasets = parseHubDatasets(
    read(env, 'FINOPS_HUB_DATASETS') ?? DEFAULT_FINOPS_HUB_DATASETS.join(','),
    problems,
  );
  const endpoint = blobEndpointOf(connection);
  const local = endpoint !== undefined && isLoopbackUrl(endpoint);
  if (local && !emulator) {
    problems.push(
      'FINOPS_HUB_STORAGE: a loopback (Azurite) endpoint is only accepted in emulator mode (a loopback GRAPH_BASE_URL); a FinOps hub is an Azure storage account',
    );
  }
  if (connection.kind === 'identity' && !connection.blobServiceUri.startsWith('https://')) {
    problems.push(
      `FINOPS_HUB_STORAGE__blobServiceUri: "${safeUrl(connection.blobServiceUri)}" must use https (the managed identity's token is only sent over TLS)`,
    );
  }
  return { connection, scope, datasets, local };
}

/**
 * Validates every setting at once. Throws an ExportError (CONFIG_INVALID) listing every problem,
 * each naming the setting and what is accepted.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const problems: string[] = [];

  const currenciesRaw = read(env, 'EXPORT_CURRENCIES');
  let currencies: string[] = [];
  if (currenciesRaw === undefined) {
    problems.push('EXPORT_CURRENCIES: missing; comma-separated ISO 4217 codes are accepted, e.g. USD,EUR');
  } else {
    currencies = checkIsoCurrencies(
      parseCurrencies(currenciesRaw, 'EXPORT_CURRENCIES', problems),
      'EXPORT_CURRENCIES',
      problems,
    );
  }
  const billingPeriods = parseBillingPeriods(
    read(env, 'EXPORT_BILLING_PERIODS') ?? 'current',
    'EXPORT_BILLING_PERIODS',
    problems,
  );
  const attributeSet = parseAttributeSet(read(env, 'EXPORT_ATTRIBUTE_SET') ?? 'full', 'EXPORT_ATTRIBUTE_SET', problems);

  const schedule = read(env, 'EXPORT_SCHEDULE') ?? '0 0 6 * * *';
  const scheduleProblem = checkSchedule(schedule);
  if (scheduleProblem !== undefined) problems.push(`EXPORT_SCHEDULE: "${schedule}" ${scheduleProblem}`);

  const graphRaw = read(env, 'GRAPH_BASE_URL') ?? 'https://graph.microsoft.com/v1.0';
  const graphBaseUrl = checkUrl(
    graphRaw,
    'GRAPH_BASE_URL',
    problems,
    'accepted: https://graph.microsoft.com/v1.0 (or /beta), or a loopback https URL of the partner billing emulator',
  );
  const emulator = isLoopbackUrl(graphBaseUrl);
  if (!graphBaseUrl.startsWith('https://') && problems.every((p) => !p.startsWith('GRAPH_BASE_URL'))) {
    problems.push(`GRAPH_BASE_URL: "${safeUrl(graphRaw)}" must use https (Graph tokens are only sent over TLS)`);
  }
  const caCertFile = read(env, 'GRAPH_CA_CERT_FILE');
  if (caCertFile !== undefined && !emulator) {
    problems.push('GRAPH_CA_CERT_FILE: only accepted in emulator mode (a loopback GRAPH_BASE_URL)');
  }

  const hostStorage = storageConnection(env, 'AzureWebJobsStorage', problems, true);
  if (hostStorage === undefined && !problems.some((p) => p.startsWith('AzureWebJobsStorage'))) {
    problems.push(
      'AzureWebJobsStorage: missing; a connection string, or AzureWebJobsStorage__accountName (managed identity) is accepted',
    );
  }
  const destinationConnection = storageConnection(env, 'DESTINATION_STORAGE', problems, false);
  if (destinationConnection === undefined && !problems.some((p) => p.startsWith('DESTINATION_STORAGE'))) {
    problems.push(
      'DESTINATION_STORAGE: missing; set exactly one of DESTINATION_STORAGE (connection string) or DESTINATION_STORAGE__blobServiceUri (managed identity)',
    );
  }
  const container = read(env, 'DESTINATION_CONTAINER') ?? 'partner-billing';
  if (!/^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(container)) {
    problems.push(
      `DESTINATION_CONTAINER: "${container}" is not a container name; 3-63 lowercase letters, digits and single hyphens`,
    );
  }
  const prefix = (read(env, 'DESTINATION_PREFIX') ?? 'unbilled-usage').replace(/^\/+|\/+$/g, '');
  if (prefix === '' || prefix.split('/').some((s) => s === '' || s === '.' || s === '..') || /[\\?#]/.test(prefix)) {
    problems.push(
      `DESTINATION_PREFIX: "${prefix}" is not a folder path; non-empty segments separated by "/", no "..", "\\", "?" or "#"`,
    );
  }

  const prefixes: Record<DatasetId, string> = {
    unbilledUsage: prefix,
    unbilledReconciliation: folderPath(
      read(env, 'DESTINATION_PREFIX_UNBILLED_RECONCILIATION') ?? 'unbilled-reconciliation',
      'DESTINATION_PREFIX_UNBILLED_RECONCILIATION',
      problems,
    ),
    billedUsage: folderPath(
      read(env, 'DESTINATION_PREFIX_BILLED_USAGE') ?? 'billed-usage',
      'DESTINATION_PREFIX_BILLED_USAGE',
      problems,
    ),
    billedReconciliation: folderPath(
      read(env, 'DESTINATION_PREFIX_BILLED_RECONCILIATION') ?? 'billed-reconciliation',
      'DESTINATION_PREFIX_BILLED_RECONCILIATION',
      problems,
    ),
    billedAggregatedUsage: folderPath(
      read(env, 'DESTINATION_PREFIX_BILLED_AGGREGATED_USAGE') ?? 'billed-aggregated-usage',
      'DESTINATION_PREFIX_BILLED_AGGREGATED_USAGE',
      problems,
    ),
  };
  const prefixOwners = new Map<string, string>();
  for (const [dataset, folder] of Object.entries(prefixes)) {
    const other = prefixOwners.get(folder);
    if (other !== undefined) {
      problems.push(
        `The datasets ${other} and ${dataset} share the folder "${folder}"; give each dataset its own DESTINATION_PREFIX_* folder`,
      );
    }
    prefixOwners.set(folder, dataset);
  }
  const datasets = parseDatasets(read(env, 'EXPORT_DATASETS') ?? 'unbilledUsage', 'EXPORT_DATASETS', problems);
  const discoveryRaw = read(env, 'EXPORT_INVOICE_DISCOVERY') ?? 'off';
  const discoveryMode = INVOICE_DISCOVERY_MODES.find((m) => m.toLowerCase() === discoveryRaw.toLowerCase());
  if (discoveryMode === undefined) {
    problems.push(`EXPORT_INVOICE_DISCOVERY: "${discoveryRaw}" is not accepted; off or partnerCenter`);
  }
  const invoiceMonths = number(env, 'EXPORT_INVOICE_MONTHS', 3, 0, 24, problems);
  const curationRaw = (read(env, 'EXPORT_CURATION') ?? 'on').toLowerCase();
  if (curationRaw !== 'on' && curationRaw !== 'off') {
    problems.push(`EXPORT_CURATION: "${read(env, 'EXPORT_CURATION')}" is not accepted; on or off`);
  }
  const partnerCenterRaw = read(env, 'PARTNER_CENTER_BASE_URL') ?? 'https://api.partnercenter.microsoft.com/v1';
  const partnerCenterBaseUrl = checkUrl(
    partnerCenterRaw,
    'PARTNER_CENTER_BASE_URL',
    problems,
    'accepted: https://api.partnercenter.microsoft.com/v1, or a loopback https URL of the partner billing emulator',
  );
  if (!partnerCenterBaseUrl.startsWith('https://') && problems.every((p) => !p.startsWith('PARTNER_CENTER_BASE_URL'))) {
    problems.push(
      `PARTNER_CENTER_BASE_URL: "${safeUrl(partnerCenterRaw)}" must use https (tokens are only sent over TLS)`,
    );
  }

  const problemsBeforePolling = problems.length;
  const initialDelaySeconds = number(env, 'EXPORT_POLL_INITIAL_SECONDS', 30, 1, 3600, problems);
  const maxDelaySeconds = number(env, 'EXPORT_POLL_MAX_SECONDS', 900, 1, 86400, problems);
  // Compared only when both were accepted: a default standing in for an invalid value proves nothing.
  if (problems.length === problemsBeforePolling && maxDelaySeconds < initialDelaySeconds) {
    problems.push('EXPORT_POLL_MAX_SECONDS: must not be below EXPORT_POLL_INITIAL_SECONDS');
  }
  const maxWaitHours = number(env, 'EXPORT_MAX_WAIT_HOURS', 6, 0.001, 168, problems, false);
  const stallMinutes = number(env, 'EXPORT_STALL_MINUTES', 30, 0.05, 1440, problems, false);
  const maxResumes = number(env, 'EXPORT_MAX_RESUMES', 3, 0, 100, problems);
  const singleCopyMaxMiB = number(env, 'EXPORT_COPY_SINGLE_MAX_MIB', 256, 1, 256, problems);
  const blockMiB = number(env, 'EXPORT_COPY_BLOCK_MIB', 16, 1, 4000, problems);
  const concurrency = number(env, 'EXPORT_COPY_CONCURRENCY', 32, 1, 64, problems);
  const finOpsHub = finOpsHubConfig(env, emulator, problems);

  if (problems.length > 0) {
    throw new ExportError(
      'CONFIG_INVALID',
      `Configuration is invalid (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n- ${problems.join('\n- ')}`,
    );
  }
  return {
    currencies,
    billingPeriods,
    attributeSet,
    schedule,
    graph: { baseUrl: graphBaseUrl, emulator, caCertFile },
    hostStorage: hostStorage!,
    destination: { connection: destinationConnection!, container, prefix, prefixes },
    datasets,
    invoiceDiscovery: { mode: discoveryMode ?? 'off', months: invoiceMonths },
    partnerCenter: { baseUrl: partnerCenterBaseUrl, emulator: isLoopbackUrl(partnerCenterBaseUrl) },
    polling: { initialDelaySeconds, maxDelaySeconds, maxWaitHours },
    supervision: { stallMinutes, maxResumes, maxRunHours: maxWaitHours + COPY_ALLOWANCE_HOURS },
    copy: { singleCopyMaxBytes: singleCopyMaxMiB * MiB, blockSizeBytes: blockMiB * MiB, concurrency },
    finOpsHub,
    curation: { enabled: curationRaw !== 'off' },
    appInsightsConnectionString: read(env, 'APPLICATIONINSIGHTS_CONNECTION_STRING'),
  };
}
