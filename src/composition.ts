import { readFileSync } from 'node:fs';
import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import type { ContainerClient } from '@azure/storage-blob';
import { DuckDbCurationEngine } from './adapters/curation/duckDbCurationEngine';
import { EMULATOR_DEV_TOKEN, EMULATOR_PARTNER_CENTER_DEV_TOKEN } from './adapters/graph/devToken';
import { GraphBillingExportApi } from './adapters/graph/graphBillingExportApi';
import { PartnerCenterInvoiceApi } from './adapters/graph/partnerCenterInvoiceApi';
import { StorageCurationQueue } from './adapters/queue/storageCurationQueue';
import { StorageMessageQueue } from './adapters/queue/storageMessageQueue';
import { ServerSideBlobCopier } from './adapters/storage/blobCopier';
import { BlobCurationStore } from './adapters/storage/blobCurationStore';
import { BlobDestination } from './adapters/storage/blobDestination';
import { createBlobServiceClient, createQueueServiceClient } from './adapters/storage/clients';
import { BlobFinOpsHubDrop, HUB_INGESTION_CONTAINER } from './adapters/storage/finOpsHubDrop';
import { TableCurationLedger } from './adapters/storage/tableCurationLedger';
import { TableRunLedger } from './adapters/storage/tableRunLedger';
import { type Config, loadConfig } from './config';
import { processClock } from './crashPoints';
import { createLogger, type LogSink } from './logging';
import { ManifestCache, type PipelineDeps } from './pipeline/deps';
import { newRunId } from './pipeline/layout';
import { type FinOpsHubDrop, noTelemetry, type Telemetry } from './pipeline/ports';
import { createTelemetry, parseAuthenticationString, type TelemetryOptions } from './telemetry/appInsightsTelemetry';

/**
 * The ONE place SDK clients and credentials are built. Everything process-wide (clients, token caches,
 * the manifest cache, telemetry) is built once per configuration; each invocation gets its own logger.
 */

/** A credential that always returns the emulator's fixed development token (emulator mode only). */
export const emulatorCredential: TokenCredential = {
  async getToken() {
    return { token: EMULATOR_DEV_TOKEN, expiresOnTimestamp: Date.now() + 3600_000 };
  },
};

/** A credential that always returns the emulator's fixed Partner Center development token (emulator mode only). */
export const emulatorPartnerCenterCredential: TokenCredential = {
  async getToken() {
    return { token: EMULATOR_PARTNER_CENTER_DEV_TOKEN, expiresOnTimestamp: Date.now() + 3600_000 };
  },
};

/**
 * The credential used for the Partner Center invoices API: the same @azure/identity settings as Graph (an app
 * registered in Partner Center), asked for the Partner Center scope only; the fixed development token in emulator mode.
 */
export function partnerCenterCredential(config: Config, env: Record<string, string | undefined>): TokenCredential {
  if (config.partnerCenter.emulator) return emulatorPartnerCenterCredential;
  const clientId = env['AZURE_CLIENT_ID'];
  return new DefaultAzureCredential(clientId === undefined ? {} : { managedIdentityClientId: clientId });
}

/** The credential used for Microsoft Graph. */
export function graphCredential(config: Config, env: Record<string, string | undefined>): TokenCredential {
  if (config.graph.emulator) return emulatorCredential;
  // DefaultAzureCredential reads AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_CERTIFICATE_PATH / AZURE_CLIENT_SECRET,
  // and uses the user-assigned managed identity named by AZURE_CLIENT_ID in Azure.
  const clientId = env['AZURE_CLIENT_ID'];
  return new DefaultAzureCredential(clientId === undefined ? {} : { managedIdentityClientId: clientId });
}

/** How telemetry is sent: Entra authentication when the authentication string asks for it, and the role name. */
export function telemetryOptions(env: Record<string, string | undefined>): TelemetryOptions {
  const auth = parseAuthenticationString(env['APPLICATIONINSIGHTS_AUTHENTICATION_STRING']);
  const credential =
    auth === undefined
      ? undefined
      : auth.clientId !== undefined
        ? new ManagedIdentityCredential({ clientId: auth.clientId })
        : new ManagedIdentityCredential();
  return {
    ...(credential === undefined ? {} : { credential }),
    ...(env['WEBSITE_SITE_NAME'] === undefined ? {} : { roleName: env['WEBSITE_SITE_NAME'] }),
  };
}

/** Telemetry from APPLICATIONINSIGHTS_CONNECTION_STRING (OpenTelemetry is loaded on first use, only when set). */
export function buildTelemetry(config: Config, env: Record<string, string | undefined>): Telemetry {
  if (config.appInsightsConnectionString === undefined) return noTelemetry;
  return createTelemetry(config.appInsightsConnectionString, telemetryOptions(env));
}

/** The FinOps hub drop-in, when FINOPS_HUB_STORAGE is set: the hub's `ingestion` container, created only on Azurite. */
export function buildFinOpsHubDrop(config: Config): FinOpsHubDrop | undefined {
  const hub = config.finOpsHub;
  if (hub === undefined) return undefined;
  const container = createBlobServiceClient(hub.connection).getContainerClient(HUB_INGESTION_CONTAINER);
  return new BlobFinOpsHubDrop(container, { scope: hub.scope, createContainer: hub.local });
}

type SharedDeps = Omit<PipelineDeps, 'logger'>;

/** Builds the process-wide dependencies from a validated configuration. */
export function buildSharedDeps(config: Config, env: Record<string, string | undefined> = process.env): SharedDeps {
  const caCertPem = config.graph.caCertFile === undefined ? undefined : readFileSync(config.graph.caCertFile, 'utf8');
  const graph = new GraphBillingExportApi({
    baseUrl: config.graph.baseUrl,
    credential: graphCredential(config, env),
    emulator: config.graph.emulator,
    caCertPem,
  });
  const destinationBlobs = createBlobServiceClient(config.destination.connection);
  const invoices =
    config.invoiceDiscovery.mode === 'partnerCenter'
      ? new PartnerCenterInvoiceApi({
          baseUrl: config.partnerCenter.baseUrl,
          credential: partnerCenterCredential(config, env),
          emulator: config.partnerCenter.emulator,
          caCertPem: config.partnerCenter.emulator ? caCertPem : undefined,
        })
      : undefined;
  const clock = processClock();
  const queues = createQueueServiceClient(config.hostStorage);
  const container = destinationBlobs.getContainerClient(config.destination.container);
  // DuckDB itself is loaded by the first conversion (DuckDbCurationEngine), not here.
  const curation = config.curation.enabled
    ? {
        ledger: new TableCurationLedger(config.hostStorage),
        queue: new StorageCurationQueue(queues),
        engine: new DuckDbCurationEngine(),
        store: new BlobCurationStore(container),
      }
    : undefined;
  return {
    invoices,
    finOpsHub: buildFinOpsHubDrop(config),
    curation,
    config,
    graph,
    ledger: new TableRunLedger(config.hostStorage, { clock }),
    queue: new StorageMessageQueue(queues),
    destination: new BlobDestination(container),
    copier: new ServerSideBlobCopier(container, config.copy),
    clock,
    telemetry: buildTelemetry(config, env),
    manifests: new ManifestCache(),
    newRunId,
    sleep: (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
  };
}

/** The destination container, for commands that only read it (the command line's `files`). */
export function destinationContainerClient(config: Config): ContainerClient {
  return createBlobServiceClient(config.destination.connection).getContainerClient(config.destination.container);
}

let shared: { key: string; deps: SharedDeps } | undefined;

/**
 * The dependencies of one invocation: configuration validated (every problem at once, thrown as
 * CONFIG_INVALID so the run fails loudly), shared clients reused, and a logger writing to `sink`.
 */
export function getDeps(sink: LogSink, env: Record<string, string | undefined> = process.env): PipelineDeps {
  const config = loadConfig(env);
  const key = JSON.stringify(config);
  if (shared === undefined || shared.key !== key) shared = { key, deps: buildSharedDeps(config, env) };
  return { ...shared.deps, logger: createLogger(sink) };
}

/** Forgets the shared dependencies (tests and the local host, after changing settings). */
export function resetDeps(): void {
  shared = undefined;
}
