import { isInvoiceId } from '../config';
import { isDatasetId } from '../datasets';
import { ExportError } from '../errors';
import type { CurationRecord } from './curationPorts';
import type { PipelineDeps } from './deps';
import { isRunId } from './layout';
import { type BlobRecord, RUN_STATUSES, type RunQuery, type RunRecord, type RunStatus } from './ports';

/** One run with its per-blob progress (GET /api/exports/runs/{runId}). */
export interface RunDetails {
  run: RunRecord;
  blobs: BlobRecord[];
  /** The run's curation (typed Parquet and FOCUS), when it has one. */
  curation?: Omit<CurationRecord, 'announced' | 'filesQueuedAt'>;
}

/** Parses the filters of GET /api/exports/runs: since/until (ISO dates), status, currency, dataset, invoiceId, limit (1-500). */
export function parseRunQuery(params: Record<string, string | undefined>): RunQuery {
  const problems: string[] = [];
  const date = (name: string): string | undefined => {
    const value = params[name];
    if (value === undefined || value === '') return undefined;
    const parsed = Date.parse(value);
    if (Number.isNaN(parsed)) {
      problems.push(`${name}: "${value}" is not a date; ISO 8601 is accepted, e.g. 2026-11-01 or 2026-11-01T06:00:00Z`);
      return undefined;
    }
    return new Date(parsed).toISOString();
  };
  const since = date('since');
  const until = date('until');
  const statusRaw = params['status'];
  let status: RunStatus | undefined;
  if (statusRaw !== undefined && statusRaw !== '') {
    if ((RUN_STATUSES as readonly string[]).includes(statusRaw)) status = statusRaw as RunStatus;
    else problems.push(`status: "${statusRaw}" is not a run status; accepted: ${RUN_STATUSES.join(', ')}`);
  }
  const currencyRaw = params['currency'];
  let currency: string | undefined;
  if (currencyRaw !== undefined && currencyRaw !== '') {
    if (/^[A-Za-z]{3}$/.test(currencyRaw)) currency = currencyRaw.toUpperCase();
    else problems.push(`currency: "${currencyRaw}" is not a three-letter ISO 4217 code`);
  }
  const datasetRaw = params['dataset'];
  let dataset: RunQuery['dataset'];
  if (datasetRaw !== undefined && datasetRaw !== '') {
    if (isDatasetId(datasetRaw)) dataset = datasetRaw;
    else {
      problems.push(
        `dataset: "${datasetRaw}" is not a dataset; accepted: unbilledUsage, unbilledReconciliation, billedUsage, billedReconciliation, billedAggregatedUsage`,
      );
    }
  }
  const invoiceRaw = params['invoiceId'];
  let invoiceId: string | undefined;
  if (invoiceRaw !== undefined && invoiceRaw !== '') {
    if (isInvoiceId(invoiceRaw)) invoiceId = invoiceRaw.toUpperCase();
    else problems.push(`invoiceId: "${invoiceRaw}" is not an invoice id; letters and digits, e.g. G000000001`);
  }
  const limitRaw = params['limit'];
  let limit = 50;
  if (limitRaw !== undefined && limitRaw !== '') {
    const n = Number(limitRaw);
    if (Number.isInteger(n) && n >= 1 && n <= 500) limit = n;
    else problems.push(`limit: "${limitRaw}" is not accepted; a whole number from 1 to 500`);
  }
  if (problems.length > 0) throw new ExportError('REQUEST_INVALID', problems.join('; '));
  return {
    since,
    until,
    status,
    currency,
    ...(dataset === undefined ? {} : { dataset }),
    ...(invoiceId === undefined ? {} : { invoiceId }),
    limit,
  };
}

/** Recent runs, newest first. A row that cannot be read as a run is left out, with an error line naming it. */
export async function listRuns(query: RunQuery, deps: PipelineDeps): Promise<RunRecord[]> {
  return deps.ledger.listRuns(query, (row) =>
    deps.logger.child({ runId: row.runId }).error(`RUN_UNREADABLE: ${row.problem} Left out of the run history.`),
  );
}

/** One run with its blobs; RUN_NOT_FOUND when there is none. */
export async function getRunDetails(runId: string, deps: PipelineDeps): Promise<RunDetails> {
  if (!isRunId(runId)) {
    throw new ExportError('REQUEST_INVALID', `"${runId}" is not a run id (e.g. 20261125T060000123Z-9f3a1c2b).`);
  }
  const found = await deps.ledger.getRun(runId);
  if (found === undefined) throw new ExportError('RUN_NOT_FOUND', `No run ${runId} in the ledger.`);
  const details: RunDetails = { run: publicRun(found.value), blobs: await deps.ledger.listBlobs(runId) };
  const curation = await deps.curation?.ledger.getCuration(runId);
  if (curation !== undefined) {
    const { announced: _announced, filesQueuedAt: _queued, ...shown } = curation.value;
    details.curation = shown;
  }
  return details;
}

/** A run as shown to operators (internal coordination fields left out). */
export function publicRun(run: RunRecord): RunRecord {
  const {
    copiesQueuedAt: _copies,
    startAttempts: _attempts,
    announced: _announced,
    committedAt: _committed,
    ...rest
  } = run;
  // Rows written before datasets existed are unbilled usage.
  return { ...rest, dataset: rest.dataset ?? 'unbilledUsage' };
}
