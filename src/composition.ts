import { readFileSync } from 'node:fs';
import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { EMULATOR_DEV_TOKEN } from './adapters/graph/devToken';
import { GraphBillingExportApi } from './adapters/graph/graphBillingExportApi';
import { StorageMessageQueue } from './adapters/queue/storageMessageQueue';
import { ServerSideBlobCopier } from './adapters/storage/blobCopier';
import { BlobDestination } from './adapters/storage/blobDestination';
import { createBlobServiceClient, createQueueServiceClient } from './adapters/storage/clients';
import { TableRunLedger } from './adapters/storage/tableRunLedger';
import { type Config, loadConfig } from './config';
import { createLogger, type LogSink } from './logging';
import { ManifestCache, type PipelineDeps } from './pipeline/deps';
import { newRunId } from './pipeline/layout';
import type { Telemetry } from './pipeline/ports';
import type * as TelemetryModule from './telemetry/appInsightsTelemetry';

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

/** The credential used for Microsoft Graph. */
export function graphCredential(config: Config, env: Record<string, string | undefined>): TokenCredential {
  if (config.graph.emulator) return emulatorCredential;
  // DefaultAzureCredential reads AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_CERTIFICATE_PATH / AZURE_CLIENT_SECRET,
  // and uses the user-assigned managed identity named by AZURE_CLIENT_ID in Azure.
  const clientId = env['AZURE_CLIENT_ID'];
  return new DefaultAzureCredential(clientId === undefined ? {} : { managedIdentityClientId: clientId });
}

/** Telemetry from APPLICATIONINSIGHTS_CONNECTION_STRING (and Entra auth when the authentication string asks for it). */
export function buildTelemetry(config: Config, env: Record<string, string | undefined>): Telemetry {
  // Required here, not imported: the telemetry stack is the heaviest import and only an invocation needs it.
  const { createTelemetry, parseAuthenticationString } =
    require('./telemetry/appInsightsTelemetry') as typeof TelemetryModule;
  const auth = parseAuthenticationString(env['APPLICATIONINSIGHTS_AUTHENTICATION_STRING']);
  const credential =
    auth === undefined
      ? undefined
      : auth.clientId !== undefined
        ? new ManagedIdentityCredential({ clientId: auth.clientId })
        : new ManagedIdentityCredential();
  return createTelemetry(config.appInsightsConnectionString, {
    ...(credential === undefined ? {} : { credential }),
    ...(env['WEBSITE_SITE_NAME'] === undefined ? {} : { roleName: env['WEBSITE_SITE_NAME'] }),
  });
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
  return {
    config,
    graph,
    ledger: new TableRunLedger(config.hostStorage),
    queue: new StorageMessageQueue(createQueueServiceClient(config.hostStorage)),
    destination: new BlobDestination(destinationBlobs.getContainerClient(config.destination.container)),
    copier: new ServerSideBlobCopier(destinationBlobs.getContainerClient(config.destination.container), config.copy),
    clock: { now: () => new Date() },
    telemetry: buildTelemetry(config, env),
    manifests: new ManifestCache(),
    newRunId,
  };
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
