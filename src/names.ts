/**
 * Names that other systems see: the Functions portal, the queues, the ledger tables, Application Insights.
 * infra/ and the alert queries refer to these; the consistency tests keep them in step.
 */

/** Function names as operators see them in the portal (SPEC section 2). */
export const FunctionNames = {
  startExportsTimer: 'startExportsTimer',
  startExportsHttp: 'startExportsHttp',
  pollExportStatus: 'pollExportStatus',
  copyExportBlob: 'copyExportBlob',
  listExportRuns: 'listExportRuns',
  exportStatusPoison: 'exportStatusPoison',
  exportCopyPoison: 'exportCopyPoison',
  superviseRuns: 'superviseRuns',
  curateExportFile: 'curateExportFile',
  exportCuratePoison: 'exportCuratePoison',
} as const;

/** Schedule of superviseRuns (six-field NCRONTAB, UTC): every 10 minutes. */
export const SUPERVISE_SCHEDULE = '0 */10 * * * *';

/** Queue names (and their poison queues, created by the Functions host after maxDequeueCount attempts). */
export const QueueNames = {
  status: 'export-status',
  copy: 'export-copy',
  statusPoison: 'export-status-poison',
  copyPoison: 'export-copy-poison',
  curate: 'export-curate',
  curatePoison: 'export-curate-poison',
} as const;

/** Azure Table storage tables of the run ledger, in the host storage account. */
export const TableNames = {
  runs: 'exportRuns',
  blobs: 'exportRunBlobs',
  locks: 'exportRunLocks',
  curations: 'exportCurations',
  curationFiles: 'exportCurationFiles',
} as const;

/** Custom events sent to Application Insights (SPEC section 8). */
export const TelemetryEvents = {
  runStarted: 'ExportRunStarted',
  runCompleted: 'ExportRunCompleted',
  runFailed: 'ExportRunFailed',
  messagePoisoned: 'ExportMessagePoisoned',
  runResumed: 'ExportRunResumed',
  runMissing: 'ExportRunMissing',
  runUnreadable: 'ExportRunUnreadable',
  curationCompleted: 'ExportCurationCompleted',
  curationFailed: 'ExportCurationFailed',
} as const;

/** Custom metrics sent to Application Insights. */
export const TelemetryMetrics = {
  durationMs: 'ExportRunDurationMs',
  byteCount: 'ExportRunBytes',
  blobCount: 'ExportRunBlobs',
  polls: 'ExportRunPolls',
} as const;

/** The connection setting prefix of the host storage (queues, ledger). */
export const HOST_STORAGE_CONNECTION = 'AzureWebJobsStorage';
