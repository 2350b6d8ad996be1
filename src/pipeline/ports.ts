import type { AttributeSet, BillingPeriod } from '../config';

/** How a run was started: the timer, or by hand (HTTP endpoint, command line). */
export type Trigger = 'schedule' | 'manual';

/** Run statuses (SPEC section 5). */
export const RUN_STATUSES = ['starting', 'waiting', 'copying', 'succeeded', 'unchanged', 'noData', 'failed'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const TERMINAL_STATUSES: readonly RunStatus[] = ['succeeded', 'unchanged', 'noData', 'failed'];

/** One blob named by a Graph manifest. */
export interface ManifestBlob {
  name: string;
  partitionValue: string;
}

/** A validated Graph partner billing manifest. `sasToken` is a secret: never log or store it. */
export interface ExportManifest {
  id: string;
  schemaVersion: string;
  dataFormat: string;
  createdDateTime: string;
  eTag: string;
  partnerTenantId: string;
  rootDirectory: string;
  sasToken: string;
  partitionType: string;
  blobCount: number;
  blobs: ManifestBlob[];
}

/** The state of a Graph long-running operation, as a closed union. */
export type OperationState =
  | { kind: 'running'; status: string; retryAfterSeconds: number | undefined; unknownStatus: boolean }
  | { kind: 'succeeded'; status: string; manifest: ExportManifest }
  | { kind: 'failed'; status: string; code: string; message: string };

/** Result of starting an export. */
export interface StartedExport {
  operationUrl: string;
  retryAfterSeconds: number | undefined;
}

/** The partner billing export API (Microsoft Graph, or its emulator). */
export interface BillingExportApi {
  startUnbilledExport(request: {
    currencyCode: string;
    billingPeriod: BillingPeriod;
    attributeSet: AttributeSet;
  }): Promise<StartedExport>;
  getOperation(operationUrl: string): Promise<OperationState>;
}

/** Fields of a run every log line and telemetry item carries. */
export interface RunIdentity {
  runId: string;
  currency: string;
  billingPeriod: BillingPeriod;
  attributeSet: AttributeSet;
  trigger: Trigger;
  operationId?: string | undefined;
}

/** Application Insights custom events and metrics. Implementations must redact and never throw. */
export interface Telemetry {
  runStarted(run: RunIdentity): void;
  runCompleted(
    run: RunIdentity & { status: RunStatus },
    measurements: { durationMs: number; blobCount: number; byteCount: number; polls: number },
  ): void;
  runFailed(
    run: RunIdentity & { status: RunStatus; errorCode: string; error: string },
    measurements: { durationMs: number; blobCount: number; byteCount: number; polls: number },
  ): void;
  messagePoisoned(details: { queue: string; runId: string | undefined; reason: string }): void;
  flush(): Promise<void>;
}

/** Telemetry that goes nowhere (no connection string). */
export const noTelemetry: Telemetry = {
  runStarted() {},
  runCompleted() {},
  runFailed() {},
  messagePoisoned() {},
  async flush() {},
};
