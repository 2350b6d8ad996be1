/**
 * The custom events the app sends (`customEvents`) and, for each, the names of its dimensions (`customDimensions`)
 * and measurements (`customMeasurements`): the one definition the emitters in ./appInsightsTelemetry.ts are typed
 * by, and the alert and workbook checks of the infrastructure tests read. A dimension without a value is left out
 * of the event (e.g. `invoiceId` of an unbilled run); the queries treat an absent `dataset` as unbilledUsage.
 */
import { TelemetryEvents } from '../names';

/** The dimensions of every run event. */
const RUN_DIMENSIONS = [
  'runId',
  'currency',
  'billingPeriod',
  'attributeSet',
  'status',
  'operationId',
  'trigger',
  'dataset',
  'invoiceId',
] as const;

/** The dimensions of the curation events: the run's, and where its curated data is. */
const CURATION_DIMENSIONS = [
  ...RUN_DIMENSIONS,
  'curationStatus',
  'billingMonth',
  'curationVersion',
  'curatedPath',
  'current',
  'hubIngestionId',
] as const;

const RUN_MEASUREMENTS = ['durationMs', 'blobCount', 'byteCount', 'polls'] as const;
const CURATION_MEASUREMENTS = ['fileCount', 'rowsRead', 'rowsConverted', 'rowsRejected', 'durationMs'] as const;

/** Each event's dimensions and measurements. */
export const EVENTS = {
  [TelemetryEvents.runStarted]: { dimensions: RUN_DIMENSIONS, measurements: [] },
  [TelemetryEvents.runCompleted]: { dimensions: RUN_DIMENSIONS, measurements: RUN_MEASUREMENTS },
  [TelemetryEvents.runFailed]: {
    dimensions: [...RUN_DIMENSIONS, 'errorCode', 'error'],
    measurements: RUN_MEASUREMENTS,
  },
  /**
   * `runStatus`: the status of the run after the handler's conditional write: `failed` when that write failed it,
   * or the final status of a run that had ended without it; '' for an unknown run. `endedRun`: 'true' when this
   * poisoning ended the run, else 'false'. The poison alert fires for `endedRun` 'true' or a status that is not
   * final, and skips a late duplicate of a run that had ended otherwise. `dataset` and `invoiceId`: those of the
   * run (none for an unknown run).
   */
  [TelemetryEvents.messagePoisoned]: {
    dimensions: ['queue', 'runId', 'reason', 'runStatus', 'endedRun', 'dataset', 'invoiceId'],
    measurements: [],
  },
  [TelemetryEvents.runResumed]: { dimensions: [...RUN_DIMENSIONS, 'step'], measurements: ['resumes'] },
  [TelemetryEvents.runMissing]: { dimensions: ['runId', 'queue', 'step'], measurements: [] },
  [TelemetryEvents.runUnreadable]: { dimensions: ['runId', 'field', 'problem'], measurements: [] },
  [TelemetryEvents.curationCompleted]: { dimensions: CURATION_DIMENSIONS, measurements: CURATION_MEASUREMENTS },
  [TelemetryEvents.curationFailed]: {
    dimensions: [...CURATION_DIMENSIONS, 'errorCode', 'error'],
    measurements: CURATION_MEASUREMENTS,
  },
} as const satisfies Record<
  (typeof TelemetryEvents)[keyof typeof TelemetryEvents],
  { dimensions: readonly string[]; measurements: readonly string[] }
>;

/** The name of a custom event. */
export type EventName = keyof typeof EVENTS;

/** What an emitter passes for `event`: every dimension of the definition (undefined when it has no value). */
export type EventProperties<E extends EventName> = Record<(typeof EVENTS)[E]['dimensions'][number], string | undefined>;

/** The measurements of `event`, by the definition's names. */
export type EventMeasurements<E extends EventName> = Record<(typeof EVENTS)[E]['measurements'][number], number>;
