/**
 * End-to-end harness: real Azurite (in memory), the real partner billing emulator over HTTPS, the real
 * function handlers driven by LocalFunctionsHost through the real queues, settings in process.env.
 * One harness per test file; each test takes a fresh destination container with `useFreshContainer()`.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { HttpRequest, type HttpResponseInit, InvocationContext } from '@azure/functions';
import { BlobClient, ContainerClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { type QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { EMULATOR_DEV_TOKEN, EMULATOR_PARTNER_CENTER_DEV_TOKEN } from '../../src/adapters/graph/devToken';
import { TableRunLedger } from '../../src/adapters/storage/tableRunLedger';
import { resetDeps } from '../../src/composition';
import { EXPORT_CONTAINER } from '../../src/emulator/exportDataStore';
import {
  type EmulatorScenario,
  type PartnerBillingEmulator,
  startPartnerBillingEmulator,
} from '../../src/emulator/partnerBillingEmulator';
import {
  type AzuriteInstance,
  DEV_STORE_ACCOUNT,
  exportSourceStorage,
  MS_BILLING_ACCOUNT,
  PARTNER_DEST_ACCOUNT,
  startAzurite,
} from '../../src/local/azurite';
import { LocalFunctionsHost, type QueueHostSettings } from '../../src/local/localHost';
import { FunctionNames, QueueNames } from '../../src/names';
import { MANIFEST_VERSION } from '../../src/pipeline/finalizeRun';
import { type BlobRecord, type RunRecord, TERMINAL_STATUSES } from '../../src/pipeline/ports';
import { uniqueName } from './azurite';
import { type IngestedItem, type IngestionServer, startIngestionServer } from './ingestionServer';

/** One log line the host (or a handler the harness called) emitted. */
export interface CapturedLog {
  level: 'info' | 'warn' | 'error';
  functionName: string;
  line: string;
}

/** A run as POST /api/exports answers it. */
export interface StartedRunBody {
  runId: string;
  currency: string;
  billingPeriod: string;
  attributeSet: string;
  status: string;
  alreadyInFlight: boolean;
  statusUrl: string;
}

/** A blob of the destination container. */
export interface DestinationBlob {
  path: string;
  byteCount: number;
  contentType: string | undefined;
}

export interface HarnessOptions {
  /** Emulator scenario (merged over the harness's small, fast defaults). */
  scenario?: Partial<EmulatorScenario>;
  /** Settings on top of the harness's defaults. */
  env?: Record<string, string | undefined>;
  /** Serve the HTTP routes on a free port. */
  http?: boolean;
}

export interface Harness {
  azurite: AzuriteInstance;
  emulator: PartnerBillingEmulator;
  host: LocalFunctionsHost;
  ingestion: IngestionServer;
  ledger: TableRunLedger;
  /** Every line logged so far, in order. */
  logs: CapturedLog[];
  /** Destination containers used so far (for scans across the file). */
  containers: string[];
  /** Base URL of the HTTP routes (127.0.0.1), when started with `http: true`. */
  httpBaseUrl: string | undefined;
  /** The current destination container (DESTINATION_CONTAINER). */
  container(): ContainerClient;
  /** Starts a test: the harness's settings again (undoing any `setEnv`) and a fresh destination container, whose name it returns. */
  beginTest(): string;
  /** Sets (or, with undefined, removes) settings; restored by `stop()`. Rebuilds the dependencies. */
  setEnv(values: Record<string, string | undefined>): void;
  /** POST /api/exports through the startExportsHttp handler. */
  startExports(body?: unknown): Promise<{ response: HttpResponseInit; runs: StartedRunBody[] }>;
  /** POST /api/exports for exactly one run (fails otherwise); returns it. */
  startOne(body: unknown): Promise<StartedRunBody>;
  /** Waits until every run is terminal; returns them in the order given. */
  waitForTerminal(runIds: string[], timeoutMs?: number): Promise<RunRecord[]>;
  /** Waits until a run satisfies `predicate`. */
  waitForRun(runId: string, predicate: (run: RunRecord) => boolean, timeoutMs?: number): Promise<RunRecord>;
  getRun(runId: string): Promise<RunRecord>;
  listBlobs(runId: string): Promise<BlobRecord[]>;
  /** Blobs of a destination container (the current one by default) under a prefix. */
  listDestination(prefix?: string, container?: string): Promise<DestinationBlob[]>;
  /** Downloads a blob of the destination container (the current one by default). */
  downloadDestination(path: string, container?: string): Promise<Buffer>;
  /** The export blob the emulator wrote (Microsoft's storage): bytes and headers. */
  downloadSource(rootDirectory: string, name: string): Promise<{ bytes: Buffer; contentType: string | undefined }>;
  /** Paths of the export blobs the emulator wrote (Microsoft's storage) that contain `text`. */
  listSource(text: string): Promise<string[]>;
  /** Custom events received by the ingestion endpoint, by name and (optionally) run id. */
  events(name: string, runId?: string): IngestedItem[];
  /** Waits until `count` events of that name (and run) arrived. */
  waitForEvents(name: string, runId: string, count?: number, timeoutMs?: number): Promise<IngestedItem[]>;
  queue(name: string): QueueClient;
  /** Sends a message as the app does: base64 of the JSON. */
  sendMessage(queueName: string, body: unknown): Promise<void>;
  /** Waits until every queue (and its poison queue) is empty and no handler runs. */
  drain(timeoutMs?: number): Promise<void>;
  /** Log lines that mention a text. */
  logsContaining(text: string): CapturedLog[];
  stop(): Promise<void>;
}

/** Fast queue semantics for tests (host.json's shape, smaller numbers). */
export const TEST_QUEUE_SETTINGS: Partial<QueueHostSettings> = {
  maxPollingIntervalMs: 200,
  visibilityTimeoutSeconds: 1,
  maxDequeueCount: 3,
};

/** Small and quick data and operations unless a test asks otherwise. */
export const TEST_SCENARIO: Partial<EmulatorScenario> = {
  pollsBeforeSuccess: 1,
  retryAfterSeconds: 1,
  blobCount: 2,
  rowsPerBlob: 200,
};

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function readAll(stream: NodeJS.ReadableStream | undefined): Promise<Buffer> {
  const chunks: Buffer[] = [];
  if (stream === undefined) return Buffer.alloc(0);
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}

function invocation(functionName: string, logs: CapturedLog[]): InvocationContext {
  return new InvocationContext({
    functionName,
    invocationId: randomBytes(8).toString('hex'),
    logHandler: (level, ...args) => {
      const line = args.map((a) => (typeof a === 'string' ? a : a instanceof Error ? a.message : String(a))).join(' ');
      const mapped = level === 'error' || level === 'critical' ? 'error' : level === 'warning' ? 'warn' : 'info';
      logs.push({ level: mapped, functionName, line });
    },
  });
}

/** Starts Azurite, the emulator, the ingestion endpoint and the local host, with settings in process.env. */
export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const saved = new Map<string, string | undefined>();
  const logs: CapturedLog[] = [];
  const containers: string[] = [];
  let azurite: AzuriteInstance | undefined;
  let emulator: PartnerBillingEmulator | undefined;
  let ingestion: IngestionServer | undefined;
  let host: LocalFunctionsHost | undefined;
  let defaults: Record<string, string | undefined> = {};

  const setEnv = (values: Record<string, string | undefined>): void => {
    for (const [name, value] of Object.entries(values)) {
      if (!saved.has(name)) saved.set(name, process.env[name]);
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    resetDeps();
  };
  const restoreEnv = (): void => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    saved.clear();
    resetDeps();
  };
  const stopAll = async (): Promise<void> => {
    await host?.stop();
    await emulator?.stop();
    await ingestion?.stop();
    await azurite?.stop();
    restoreEnv();
  };

  try {
    azurite = await startAzurite();
    const az = azurite;
    emulator = await startPartnerBillingEmulator({
      storage: exportSourceStorage(az),
      scenario: { ...TEST_SCENARIO, ...options.scenario },
    });
    ingestion = await startIngestionServer();
    const hostConnection = az.connectionString(DEV_STORE_ACCOUNT.name);
    const firstContainer = uniqueName('e2e');
    containers.push(firstContainer);
    defaults = {
      EXPORT_CURRENCIES: 'USD',
      EXPORT_BILLING_PERIODS: 'current',
      EXPORT_ATTRIBUTE_SET: 'full',
      EXPORT_SCHEDULE: '0 0 6 * * *',
      GRAPH_BASE_URL: emulator.baseUrl,
      GRAPH_CA_CERT_FILE: emulator.caCertPath,
      AzureWebJobsStorage: hostConnection,
      DESTINATION_STORAGE: az.connectionString(PARTNER_DEST_ACCOUNT.name),
      DESTINATION_CONTAINER: firstContainer,
      DESTINATION_PREFIX: 'unbilled-usage',
      EXPORT_POLL_INITIAL_SECONDS: '1',
      EXPORT_POLL_MAX_SECONDS: '2',
      EXPORT_MAX_WAIT_HOURS: undefined,
      APPLICATIONINSIGHTS_CONNECTION_STRING: ingestion.connectionString,
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: undefined,
      // Curation (DuckDB) only where a test asks for it: it is tested on its own, and costs seconds per run.
      EXPORT_CURATION: 'off',
      ...options.env,
    };
    setEnv(defaults);
    host = await LocalFunctionsHost.start({
      hostStorage: { kind: 'connectionString', connectionString: hostConnection },
      queueSettings: TEST_QUEUE_SETTINGS,
      log: (level, functionName, line) => logs.push({ level, functionName, line }),
      ...(options.http ? { httpPort: 0 } : {}),
    });
  } catch (error) {
    await stopAll();
    throw error;
  }

  const az = azurite;
  const emu = emulator;
  const hst = host;
  const ledger = new TableRunLedger({
    kind: 'connectionString',
    connectionString: az.connectionString(DEV_STORE_ACCOUNT.name),
  });
  const queues = QueueServiceClient.fromConnectionString(az.connectionString(DEV_STORE_ACCOUNT.name));
  const destinationCredential = new StorageSharedKeyCredential(
    PARTNER_DEST_ACCOUNT.name,
    az.accountKey(PARTNER_DEST_ACCOUNT.name),
  );
  const sourceCredential = new StorageSharedKeyCredential(
    MS_BILLING_ACCOUNT.name,
    az.accountKey(MS_BILLING_ACCOUNT.name),
  );
  const containerClient = (name?: string): ContainerClient => {
    const containerName = name ?? process.env['DESTINATION_CONTAINER'] ?? '';
    return new ContainerClient(
      `${az.blobEndpoint}/${PARTNER_DEST_ACCOUNT.name}/${containerName}`,
      destinationCredential,
    );
  };

  const getRun = async (runId: string): Promise<RunRecord> => {
    const found = await ledger.getRun(runId);
    if (found === undefined) throw new Error(`Run ${runId} is not in the ledger.`);
    return found.value;
  };

  const recentLogs = (count = 40): string =>
    logs
      .slice(-count)
      .map((l) => `  ${l.level} ${l.functionName}: ${l.line}`)
      .join('\n');

  const waitForRun = async (
    runId: string,
    predicate: (run: RunRecord) => boolean,
    timeoutMs = 60_000,
  ): Promise<RunRecord> => {
    const deadline = Date.now() + timeoutMs;
    let last: RunRecord | undefined;
    while (Date.now() < deadline) {
      last = (await ledger.getRun(runId))?.value;
      if (last !== undefined && predicate(last)) return last;
      await sleep(150);
    }
    throw new Error(
      `Run ${runId} did not reach the expected state within ${timeoutMs} ms (last: ${JSON.stringify(last)}).\nRecent logs:\n${recentLogs()}`,
    );
  };

  const events = (name: string, runId?: string): IngestedItem[] =>
    (ingestion?.items ?? []).filter(
      (item) =>
        item.baseType === 'EventData' &&
        item.name === name &&
        (runId === undefined || item.properties['runId'] === runId),
    );

  const harness: Harness = {
    azurite: az,
    emulator: emu,
    host: hst,
    ingestion,
    ledger,
    logs,
    containers,
    httpBaseUrl: hst.httpBaseUrl?.replace('//localhost:', '//127.0.0.1:'),
    container: () => containerClient(),
    beginTest() {
      const name = uniqueName('e2e');
      containers.push(name);
      setEnv({ ...defaults, DESTINATION_CONTAINER: name });
      return name;
    },
    setEnv,
    async startExports(body?: unknown) {
      const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
      const request = new HttpRequest({
        method: 'POST',
        url: 'http://localhost:7071/api/exports',
        headers: { 'content-type': 'application/json' },
        ...(text === '' ? {} : { body: { string: text } }),
      });
      const response = await hst.handlers.startExportsHttp(request, invocation(FunctionNames.startExportsHttp, logs));
      const json = response.jsonBody as { runs?: StartedRunBody[] } | undefined;
      return { response, runs: json?.runs ?? [] };
    },
    async startOne(body) {
      const { response, runs } = await harness.startExports(body);
      assert.equal(response.status, 202, JSON.stringify(response.jsonBody));
      assert.equal(runs.length, 1, `one run expected, got ${JSON.stringify(runs)}`);
      return runs[0] as StartedRunBody;
    },
    async waitForTerminal(runIds, timeoutMs = 60_000) {
      const out: RunRecord[] = [];
      for (const runId of runIds) {
        out.push(await waitForRun(runId, (run) => TERMINAL_STATUSES.includes(run.status), timeoutMs));
      }
      return out;
    },
    waitForRun,
    getRun,
    listBlobs: (runId) => ledger.listBlobs(runId),
    async listDestination(prefix = '', container?: string) {
      const out: DestinationBlob[] = [];
      try {
        for await (const item of containerClient(container).listBlobsFlat({ prefix })) {
          out.push({
            path: item.name,
            byteCount: item.properties.contentLength ?? 0,
            contentType: item.properties.contentType,
          });
        }
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode === 404) return [];
        throw error;
      }
      return out;
    },
    async downloadDestination(path, container?: string) {
      const response = await containerClient(container).getBlobClient(path).download();
      return readAll(response.readableStreamBody);
    },
    async downloadSource(rootDirectory, name) {
      const client = new BlobClient(`${rootDirectory}/${name}`, sourceCredential);
      const response = await client.download();
      return { bytes: await readAll(response.readableStreamBody), contentType: response.contentType };
    },
    async listSource(text) {
      const out: string[] = [];
      const source = new ContainerClient(
        `${az.blobEndpoint}/${MS_BILLING_ACCOUNT.name}/${EXPORT_CONTAINER}`,
        sourceCredential,
      );
      for await (const item of source.listBlobsFlat()) if (item.name.includes(text)) out.push(item.name);
      return out;
    },
    events,
    async waitForEvents(name, runId, count = 1, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const found = events(name, runId);
        if (found.length >= count) return found;
        await sleep(100);
      }
      throw new Error(`${count} ${name} event(s) of run ${runId} expected; got ${events(name, runId).length}.`);
    },
    queue: (name) => queues.getQueueClient(name),
    async sendMessage(queueName, body) {
      const client = queues.getQueueClient(queueName);
      await client.createIfNotExists();
      await client.sendMessage(Buffer.from(JSON.stringify(body), 'utf8').toString('base64'));
    },
    async drain(timeoutMs = 30_000) {
      const names = Object.values(QueueNames);
      const deadline = Date.now() + timeoutMs;
      let quietChecks = 0;
      while (Date.now() < deadline) {
        const counts = await Promise.all(
          names.map(async (name) => {
            try {
              return (await queues.getQueueClient(name).getProperties()).approximateMessagesCount ?? 0;
            } catch {
              return 0;
            }
          }),
        );
        quietChecks = counts.every((count) => count === 0) && !hst.busy ? quietChecks + 1 : 0;
        if (quietChecks >= 3) return;
        await sleep(150);
      }
      throw new Error(`The queues did not drain within ${timeoutMs} ms.\nRecent logs:\n${recentLogs()}`);
    },
    logsContaining: (text) => logs.filter((l) => l.line.includes(text)),
    stop: stopAll,
  };
  return harness;
}

/** The layout of SPEC section 4, for one run folder. */
export function runFolderPattern(prefix = 'unbilled-usage'): RegExp {
  return new RegExp(
    `^${prefix}/billingMonth=(\\d{4}-\\d{2})/currency=([A-Z]{3})/attributeSet=(full|basic)/run=(\\d{8}T\\d{9}Z-[0-9a-f]{8})/(.+)$`,
  );
}

/** `{prefix}/billingMonth=.../currency=.../attributeSet=.../latest.json`. */
export function latestPattern(prefix = 'unbilled-usage'): RegExp {
  return new RegExp(
    `^${prefix}/billingMonth=(\\d{4}-\\d{2})/currency=([A-Z]{3})/attributeSet=(full|basic)/latest\\.json$`,
  );
}

/** The default folder of each dataset (README, Layout). */
const DEFAULT_PREFIXES: Record<string, string> = {
  unbilledUsage: 'unbilled-usage',
  unbilledReconciliation: 'unbilled-reconciliation',
  billedUsage: 'billed-usage',
  billedReconciliation: 'billed-reconciliation',
  billedAggregatedUsage: 'billed-aggregated-usage',
};

/** Checks a succeeded run's folder: layout, bytes, headers, manifest.json and latest.json. */
export async function assertRunFolder(h: Harness, run: RunRecord): Promise<void> {
  assert.equal(run.status, 'succeeded', `run ${run.runId}: ${run.error ?? ''}`);
  const dataset = run.dataset ?? 'unbilledUsage';
  const prefix = DEFAULT_PREFIXES[dataset];
  const series =
    run.invoiceId === undefined
      ? `${prefix}/billingMonth=${run.billingMonth}/currency=${run.currency}/attributeSet=${run.attributeSet}`
      : `${prefix}/billingMonth=${run.billingMonth}/invoiceId=${run.invoiceId}/attributeSet=${run.attributeSet}`;
  const folder = `${series}/run=${run.runId}`;
  assert.equal(run.path, folder);
  assert.ok(run.rootDirectory !== undefined && !run.rootDirectory.includes('?'));
  const sourceMonth = /BillingMonth=(\d{4})(\d{2})/.exec(run.rootDirectory ?? '');
  assert.ok(sourceMonth !== null, 'the emulator root names its billing month');
  assert.equal(run.billingMonth, `${sourceMonth[1]}-${sourceMonth[2]}`);

  const blobs = await h.listBlobs(run.runId);
  assert.ok(blobs.length > 0);
  const inFolder = await h.listDestination(`${folder}/`);
  assert.deepEqual(
    inFolder.map((b) => b.path).sort(),
    [...blobs.map((b) => `${folder}/${b.name}`), `${folder}/manifest.json`].sort(),
  );
  let bytes = 0;
  for (const blob of blobs) {
    assert.equal(blob.status, 'copied');
    const source = await h.downloadSource(run.rootDirectory ?? '', blob.name);
    const copied = await h.downloadDestination(`${folder}/${blob.name}`);
    assert.ok(copied.equals(source.bytes), `${blob.name} is byte-identical to the export blob`);
    const listed = inFolder.find((b) => b.path === `${folder}/${blob.name}`);
    assert.equal(listed?.byteCount, source.bytes.length);
    assert.equal(listed?.contentType, source.contentType);
    assert.equal(blob.byteCount, source.bytes.length);
    bytes += source.bytes.length;
  }

  const manifestText = (await h.downloadDestination(`${folder}/manifest.json`)).toString('utf8');
  assert.ok(!manifestText.includes('sig='), 'manifest.json holds no SAS');
  const manifest = JSON.parse(manifestText) as Record<string, unknown>;
  assert.deepEqual(Object.keys(manifest).sort(), [
    'attributeSet',
    'billingMonth',
    'billingPeriod',
    'blobCount',
    'blobs',
    'byteCount',
    'completedAt',
    'currency',
    'dataset',
    'graph',
    'invoiceId',
    'manifestVersion',
    'runId',
    'startedAt',
    'trigger',
  ]);
  assert.equal(manifest['manifestVersion'], MANIFEST_VERSION);
  assert.equal(manifest['dataset'], dataset);
  assert.equal(manifest['invoiceId'], run.invoiceId ?? null);
  assert.equal(manifest['runId'], run.runId);
  assert.equal(manifest['trigger'], run.trigger);
  assert.equal(manifest['currency'], run.currency);
  assert.equal(manifest['billingPeriod'], run.billingPeriod);
  assert.equal(manifest['billingMonth'], run.billingMonth);
  assert.equal(manifest['attributeSet'], run.attributeSet);
  assert.equal(manifest['startedAt'], run.startedAt);
  assert.equal(manifest['completedAt'], run.completedAt);
  assert.equal(manifest['blobCount'], blobs.length);
  assert.equal(manifest['byteCount'], bytes);
  assert.equal(run.byteCount, bytes);
  // Each blob with the content hash the storage service reported for its copy, where it gave one (issue 14).
  assert.deepEqual(
    manifest['blobs'],
    blobs.map((b) => ({
      name: b.name,
      byteCount: b.byteCount,
      ...(b.contentCrc64 === undefined ? {} : { contentCrc64: b.contentCrc64 }),
      ...(b.contentMd5 === undefined ? {} : { contentMd5: b.contentMd5 }),
    })),
  );
  for (const blob of blobs) {
    assert.ok(blob.destinationEtag !== undefined, `${blob.name}: the ETag of the copy is recorded for the fan-in`);
    if (blob.contentMd5 !== undefined) {
      const copied = await h.downloadDestination(`${folder}/${blob.name}`);
      assert.equal(blob.contentMd5, createHash('md5').update(copied).digest('base64'), `${blob.name}: contentMd5`);
    }
  }
  const graph = manifest['graph'] as Record<string, unknown>;
  assert.deepEqual(Object.keys(graph).sort(), [
    'createdDateTime',
    'dataFormat',
    'eTag',
    'manifestId',
    'operationId',
    'partnerTenantId',
    'schemaVersion',
  ]);
  const operation = h.emulator.operations().find((op) => op.id === graph['operationId']);
  assert.ok(operation !== undefined, 'graph.operationId is the emulator operation');
  assert.equal(operation.dataset, dataset);
  if (run.invoiceId === undefined) {
    assert.equal(operation.currency, run.currency);
    assert.equal(operation.billingPeriod, run.billingPeriod);
  } else {
    assert.equal(operation.invoiceId, run.invoiceId);
  }
  assert.equal(graph['manifestId'], operation.manifestId);
  assert.equal(graph['eTag'], operation.eTag);
  for (const field of ['schemaVersion', 'dataFormat', 'createdDateTime', 'partnerTenantId']) {
    assert.equal(typeof graph[field], 'string', `graph.${field}`);
    assert.notEqual(graph[field], '', `graph.${field}`);
  }

  const latest = JSON.parse((await h.downloadDestination(`${series}/latest.json`)).toString('utf8')) as Record<
    string,
    unknown
  >;
  assert.deepEqual(latest, { runId: run.runId, path: folder, eTag: operation.eTag, completedAt: run.completedAt });
}

/**
 * Scans everything the app left behind in this harness (log lines, ledger rows of every run and blob,
 * rejected messages, manifest.json and latest.json of every container, telemetry bodies) for secrets:
 * `sig=`, `Bearer `, the emulator's development token, the storage keys, and the given SAS tokens and
 * their signatures. Returns how much it scanned.
 */
export async function assertNoSecrets(
  h: Harness,
  sasTokens: string[] = [],
): Promise<{ logLines: number; runs: number; files: number; telemetryBodies: number }> {
  const texts: Array<[string, string]> = [];
  for (const log of h.logs) texts.push([`log of ${log.functionName}`, log.line]);
  const runs = await h.ledger.listRuns({ limit: 500 });
  for (const run of runs) {
    texts.push([`ledger run ${run.runId}`, JSON.stringify(run)]);
    texts.push([`ledger blobs of ${run.runId}`, JSON.stringify(await h.listBlobs(run.runId))]);
  }
  texts.push(['rejected messages', JSON.stringify(await h.ledger.listRejectedMessages(1000))]);
  let files = 0;
  for (const container of h.containers) {
    for (const blob of await h.listDestination('', container)) {
      if (!blob.path.endsWith('/manifest.json') && !blob.path.endsWith('/latest.json')) continue;
      files++;
      texts.push([`${container}/${blob.path}`, (await h.downloadDestination(blob.path, container)).toString('utf8')]);
    }
  }
  for (const body of h.ingestion.rawBodies) texts.push(['telemetry body', body]);

  const signatures = sasTokens.map((token) => new URLSearchParams(token).get('sig') ?? '');
  assert.ok(
    signatures.every((sig) => sig.length > 20),
    'every SAS token given carries a signature',
  );
  const forbidden: Array<[string, string]> = [
    ['sig=', 'a SAS sig= parameter'],
    ['Bearer ', 'a bearer token'],
    [EMULATOR_DEV_TOKEN, 'the emulator development token'],
    [EMULATOR_PARTNER_CENTER_DEV_TOKEN, 'the emulator Partner Center development token'],
    [MS_BILLING_ACCOUNT.key, 'the export storage account key'],
    [PARTNER_DEST_ACCOUNT.key, 'the destination account key'],
    [DEV_STORE_ACCOUNT.key, 'the host storage account key'],
    ...signatures.flatMap(
      (sig): Array<[string, string]> => [
        [sig, 'a SAS signature'],
        [encodeURIComponent(sig), 'a URL-encoded SAS signature'],
      ],
    ),
    ...sasTokens.map((token): [string, string] => [token, 'a whole SAS token']),
  ];
  for (const [where, text] of texts) {
    for (const [secret, what] of forbidden) {
      assert.ok(!text.includes(secret), `${what} in ${where}: ${text.slice(0, 300)}`);
    }
  }
  return { logLines: h.logs.length, runs: runs.length, files, telemetryBodies: h.ingestion.rawBodies.length };
}
