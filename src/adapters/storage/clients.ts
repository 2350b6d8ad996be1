import { TableClient, TableServiceClient, type TableServiceClientOptions } from '@azure/data-tables';
import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { BlobServiceClient, type StoragePipelineOptions } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import type { StorageConnection } from '../../config';
import { ExportError } from '../../errors';
import { redact } from '../../redact';

/** Extra settings when building storage clients. */
export interface StorageClientOptions {
  /**
   * The credential of an identity-based connection. Default: the user-assigned managed identity named by the
   * connection's `clientId`, else the system-assigned one when running in Azure, else `DefaultAzureCredential`.
   */
  credential?: TokenCredential | undefined;
}

const credentials = new Map<string, TokenCredential>();

/**
 * The credential of an identity-based storage connection (one per client id and process, so tokens are cached).
 * With a client id: that user-assigned managed identity. Without: the system-assigned identity in Azure
 * (`IDENTITY_ENDPOINT`/`MSI_ENDPOINT` set), `DefaultAzureCredential` elsewhere (developer sign-in).
 */
export function storageCredential(clientId: string | undefined): TokenCredential {
  const key = clientId ?? '';
  let credential = credentials.get(key);
  if (credential === undefined) {
    const inAzure = process.env['IDENTITY_ENDPOINT'] !== undefined || process.env['MSI_ENDPOINT'] !== undefined;
    credential =
      clientId !== undefined
        ? new ManagedIdentityCredential({ clientId })
        : inAzure
          ? new ManagedIdentityCredential()
          : new DefaultAzureCredential();
    credentials.set(key, credential);
  }
  return credential;
}

function credentialOf(
  connection: Extract<StorageConnection, { kind: 'identity' }>,
  options: StorageClientOptions,
): TokenCredential {
  return options.credential ?? storageCredential(connection.clientId);
}

function missingEndpoint(service: 'queue' | 'table'): ExportError {
  return new ExportError(
    'CONFIG_INVALID',
    `The identity-based storage connection has no ${service} endpoint; set __accountName or __${service}ServiceUri.`,
  );
}

/** A Blob service client for a connection string (incl. `UseDevelopmentStorage=true` and Azurite IP-style endpoints) or an identity. */
export function createBlobServiceClient(
  connection: StorageConnection,
  options: StorageClientOptions = {},
  pipelineOptions: StoragePipelineOptions = {},
): BlobServiceClient {
  if (connection.kind === 'connectionString') {
    return BlobServiceClient.fromConnectionString(connection.connectionString, pipelineOptions);
  }
  return new BlobServiceClient(connection.blobServiceUri, credentialOf(connection, options), pipelineOptions);
}

/** A Queue service client (same connection forms as the blob client). */
export function createQueueServiceClient(
  connection: StorageConnection,
  options: StorageClientOptions = {},
): QueueServiceClient {
  if (connection.kind === 'connectionString') {
    return QueueServiceClient.fromConnectionString(connection.connectionString);
  }
  if (connection.queueServiceUri === undefined) throw missingEndpoint('queue');
  return new QueueServiceClient(connection.queueServiceUri, credentialOf(connection, options));
}

/** Does this connection string reach its table endpoint over plain http (Azurite)? */
function tableOverHttp(connectionString: string): boolean {
  const parts = new Map<string, string>();
  for (const part of connectionString.split(';')) {
    const at = part.indexOf('=');
    if (at > 0) parts.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim());
  }
  if (parts.get('usedevelopmentstorage')?.toLowerCase() === 'true') return true;
  const endpoint = parts.get('tableendpoint');
  if (endpoint !== undefined) return endpoint.toLowerCase().startsWith('http://');
  return parts.get('defaultendpointsprotocol')?.toLowerCase() === 'http';
}

function tableOptions(connection: StorageConnection): TableServiceClientOptions {
  // @azure/data-tables refuses http endpoints unless told otherwise; Azurite serves tables over http.
  const insecure =
    connection.kind === 'connectionString'
      ? tableOverHttp(connection.connectionString)
      : (connection.tableServiceUri ?? '').toLowerCase().startsWith('http://');
  return insecure ? { allowInsecureConnection: true } : {};
}

/** A Table service client (same connection forms as the blob client). */
export function createTableServiceClient(
  connection: StorageConnection,
  options: StorageClientOptions = {},
): TableServiceClient {
  if (connection.kind === 'connectionString') {
    return TableServiceClient.fromConnectionString(connection.connectionString, tableOptions(connection));
  }
  if (connection.tableServiceUri === undefined) throw missingEndpoint('table');
  return new TableServiceClient(
    connection.tableServiceUri,
    credentialOf(connection, options),
    tableOptions(connection),
  );
}

/** A client of one table (same connection forms as the blob client). */
export function createTableClient(
  connection: StorageConnection,
  tableName: string,
  options: StorageClientOptions = {},
): TableClient {
  if (connection.kind === 'connectionString') {
    return TableClient.fromConnectionString(connection.connectionString, tableName, tableOptions(connection));
  }
  if (connection.tableServiceUri === undefined) throw missingEndpoint('table');
  return new TableClient(
    connection.tableServiceUri,
    tableName,
    credentialOf(connection, options),
    tableOptions(connection),
  );
}

/** What a failed storage call tells us: HTTP status (undefined for network errors), service error code, redacted message. */
export interface StorageErrorInfo {
  status: number | undefined;
  code: string | undefined;
  message: string;
}

/** Reads a storage SDK error (RestError or anything thrown) without keeping the request (whose URL may carry a SAS). */
export function storageErrorInfo(error: unknown): StorageErrorInfo {
  let status: number | undefined;
  let code: string | undefined;
  let message = String(error);
  if (typeof error === 'object' && error !== null) {
    if ('statusCode' in error && typeof error.statusCode === 'number') status = error.statusCode;
    if ('code' in error && typeof error.code === 'string') code = error.code;
    if ('message' in error && typeof error.message === 'string') message = error.message;
    // Storage puts the service's error code in the details when the response had a body; Tables an OData error.
    if ('details' in error && typeof error.details === 'object' && error.details !== null) {
      const details = error.details;
      if (code === undefined && 'errorCode' in details && typeof details.errorCode === 'string')
        code = details.errorCode;
      if ('odataError' in details && typeof details.odataError === 'object' && details.odataError !== null) {
        const odata = details.odataError;
        if ('code' in odata && typeof odata.code === 'string' && odata.code !== '') code = odata.code;
        if ('message' in odata && typeof odata.message === 'object' && odata.message !== null) {
          const text = 'value' in odata.message ? odata.message.value : undefined;
          if (typeof text === 'string') message = text;
        }
      }
    }
    if (code === '') code = undefined;
  }
  // The first line is enough; storage messages continue with RequestId/Time lines.
  const firstLine = (message.split('\n')[0] ?? message).replace(/\s*RequestId:.*$/, '');
  return { status, code, message: redact(firstLine.trim()) };
}

/** Is this failure worth retrying (server error, throttling, timeout, network)? */
export function isTransient(info: StorageErrorInfo): boolean {
  return info.status === undefined || info.status === 408 || info.status === 429 || info.status >= 500;
}

/** `status code` for messages, e.g. `403 AuthorizationPermissionMismatch`. */
export function describeStatus(info: StorageErrorInfo): string {
  const parts = [info.status === undefined ? 'network error' : String(info.status), info.code].filter(
    (part): part is string => part !== undefined && part !== '',
  );
  return parts.join(' ');
}

/** `status code: message` for messages (the message left out when the service sent none, as for HEAD). */
export function describeError(info: StorageErrorInfo): string {
  return info.message === '' ? describeStatus(info) : `${describeStatus(info)}: ${info.message}`;
}

const ROLE_HINT =
  'grant the function app identity the Storage Blob Data Contributor role on the destination account or container ' +
  '(or fix the DESTINATION_STORAGE connection string)';

/**
 * Maps a failed destination call: 403 → DESTINATION_FORBIDDEN (terminal, names the role), server errors and
 * network → DESTINATION_UNAVAILABLE (retryable), anything else → COPY_FAILED (retryable only on 409/412).
 */
export function destinationError(error: unknown, what: string): ExportError {
  const info = storageErrorInfo(error);
  const detail = describeError(info);
  if (info.status === 401 || info.status === 403) {
    return new ExportError('DESTINATION_FORBIDDEN', redact(`${what} was refused (${detail}); ${ROLE_HINT}.`), {
      status: info.status,
    });
  }
  if (isTransient(info)) {
    // No answer at all: name the setting, so a connection string on a closed port says where to look.
    const where = info.status === undefined ? ': the destination account (DESTINATION_STORAGE) did not answer' : '';
    return new ExportError(
      'DESTINATION_UNAVAILABLE',
      redact(`${what} failed${where} (${detail}); it will be retried.`),
      {
        retryable: true,
        status: info.status,
      },
    );
  }
  if (info.status === 404 && info.code === 'ContainerNotFound') {
    return new ExportError(
      'DESTINATION_UNAVAILABLE',
      redact(`${what} failed: the destination container does not exist (${detail}); it is created when a run starts.`),
      { retryable: true, status: info.status },
    );
  }
  return new ExportError('COPY_FAILED', redact(`${what} failed (${detail}).`), {
    retryable: info.status === 409 || info.status === 412,
    status: info.status,
  });
}

/**
 * The client once its table exists: the table is created once per process, remembered in `ready` (a failed attempt
 * is forgotten, so the next call tries again).
 */
export function tableCreatedOnce(ready: Map<string, Promise<void>>, client: TableClient): Promise<TableClient> {
  let created = ready.get(client.tableName);
  if (created === undefined) {
    created = client.createTable().catch((error: unknown) => {
      ready.delete(client.tableName);
      throw error;
    });
    ready.set(client.tableName, created);
  }
  return created.then(() => client);
}
