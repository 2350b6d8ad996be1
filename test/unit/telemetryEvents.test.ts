/**
 * The custom events against their one definition (src/telemetry/events.ts): what the emitters send, and what the
 * shipped queries read. The emitters run against a stand-in runtime placed where the process keeps its one
 * OpenTelemetry runtime, so nothing is loaded and nothing is sent.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TelemetryEvents } from '../../src/names';
import type { Telemetry } from '../../src/pipeline/ports';
import { createTelemetry } from '../../src/telemetry/appInsightsTelemetry';
import { EVENTS } from '../../src/telemetry/events';
import type { TelemetryRuntime } from '../../src/telemetry/openTelemetryRuntime';
import { EVENT_DIMENSIONS, EVENT_MEASUREMENTS } from '../support/infraExpectations';

const CONNECTION_STRING =
  'InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://127.0.0.1:9/';
const root = join(__dirname, '..', '..', '..');

interface Sent {
  name: string;
  properties: Record<string, string>;
  measurements: Record<string, number>;
}

/** Telemetry whose runtime is a stand-in that keeps every event. */
function recordingTelemetry(): { telemetry: Telemetry; sent: Sent[] } {
  const sent: Sent[] = [];
  const runtime: TelemetryRuntime = {
    connectionString: CONNECTION_STRING,
    log() {},
    event(name, properties, measurements) {
      sent.push({ name, properties, measurements });
    },
    metric() {},
    exception() {},
    contextOf() {
      throw new Error('not used');
    },
    flush: async () => {},
  };
  (globalThis as Record<symbol, unknown>)[Symbol.for('csp-unbilled-export.telemetry')] = { runtime, failed: false };
  return { telemetry: createTelemetry(CONNECTION_STRING), sent };
}

/** Calls every method of the port once, with every optional field set. */
function emitEveryEvent(telemetry: Telemetry): void {
  const run = {
    runId: 'run-1',
    currency: 'USD',
    billingPeriod: 'last',
    attributeSet: 'full',
    trigger: 'schedule',
    operationId: 'op-1',
    dataset: 'billedUsage',
    invoiceId: 'G000000001',
  } as const;
  const measurements = { durationMs: 1, blobCount: 2, byteCount: 3, polls: 4 };
  const curation = {
    ...run,
    billingMonth: '2026-11',
    curationVersion: '1.0',
    curatedPath: 'billed-usage/x',
    current: true,
    hubIngestionId: '20261207T000000000Z-00000001',
    fileCount: 1,
    rowsRead: 2,
    rowsConverted: 2,
    rowsRejected: 0,
    durationMs: 5,
  };
  telemetry.runStarted(run);
  telemetry.runCompleted({ ...run, status: 'succeeded' }, measurements);
  telemetry.runFailed({ ...run, status: 'failed', errorCode: 'COPY_FAILED', error: 'boom' }, measurements);
  telemetry.messagePoisoned({
    queue: 'export-copy-poison',
    runId: run.runId,
    reason: 'poisoned',
    runStatus: 'failed',
    endedRun: true,
    dataset: 'billedUsage',
    invoiceId: 'G000000001',
  });
  telemetry.runResumed({ ...run, status: 'copying' }, { step: 'copy', resumes: 1 });
  telemetry.runMissing({ runId: run.runId, queue: 'export-status', step: 'status check' });
  telemetry.runUnreadable({ runId: run.runId, field: 'dataset', problem: 'unreadable' });
  telemetry.curationCompleted(curation);
  telemetry.curationFailed({ ...curation, errorCode: 'CURATION_FAILED', error: 'boom' });
}

describe('custom events', () => {
  it('define every event of src/names.ts TelemetryEvents, and no other', () => {
    assert.deepEqual(Object.keys(EVENTS).sort(), Object.values(TelemetryEvents).sort());
  });

  it('send exactly the dimensions and measurements of their definition, every field given', () => {
    const { telemetry, sent } = recordingTelemetry();
    emitEveryEvent(telemetry);
    assert.deepEqual(sent.map((event) => event.name).sort(), Object.keys(EVENTS).sort());
    for (const event of sent) {
      const definition = EVENTS[event.name as keyof typeof EVENTS];
      assert.deepEqual(Object.keys(event.properties).sort(), [...definition.dimensions].sort(), event.name);
      assert.deepEqual(Object.keys(event.measurements).sort(), [...definition.measurements].sort(), event.name);
    }
  });

  it("send ExportMessagePoisoned with the run's dataset, invoice and status", () => {
    const { telemetry, sent } = recordingTelemetry();
    emitEveryEvent(telemetry);
    const poisoned = sent.find((event) => event.name === TelemetryEvents.messagePoisoned);
    assert.deepEqual(poisoned?.properties, {
      queue: 'export-copy-poison',
      runId: 'run-1',
      reason: 'poisoned',
      runStatus: 'failed',
      endedRun: 'true',
      dataset: 'billedUsage',
      invoiceId: 'G000000001',
    });
  });

  it('are what the infrastructure tests expect the queries to read (generated from the definition)', () => {
    for (const [name, definition] of Object.entries(EVENTS)) {
      assert.deepEqual(EVENT_DIMENSIONS[name], definition.dimensions, name);
      for (const measurement of definition.measurements) assert.ok(EVENT_MEASUREMENTS.includes(measurement));
    }
  });

  it('carry every dimension and measurement the shipped queries read from them (infra/queries)', () => {
    const dir = join(root, 'infra', 'queries');
    for (const file of readdirSync(dir).filter((name) => name.endsWith('.kql'))) {
      const query = readFileSync(join(dir, file), 'utf8').replace(/\/\/.*$/gm, '');
      const events = [
        ...[...query.matchAll(/\bname\s*==\s*"([^"]*)"/g)].map((m) => m[1] ?? ''),
        ...[...query.matchAll(/\bname\s+in\s*\(([^)]*)\)/g)].flatMap((m) =>
          [...(m[1] ?? '').matchAll(/"([^"]*)"/g)].map((literal) => literal[1] ?? ''),
        ),
      ].filter((name) => name in EVENTS);
      if (events.length === 0) continue;
      const definitions = events.map((name) => EVENTS[name as keyof typeof EVENTS]);
      const dimensions = new Set<string>(definitions.flatMap((d) => d.dimensions));
      const measurements = new Set<string>(definitions.flatMap((d) => d.measurements));
      for (const m of query.matchAll(/customDimensions\.(\w+)/g)) {
        assert.ok(dimensions.has(m[1] ?? ''), `${file}: ${events.join('/')} carry no dimension ${m[1]}`);
      }
      for (const m of query.matchAll(/customMeasurements\.(\w+)/g)) {
        assert.ok(measurements.has(m[1] ?? ''), `${file}: ${events.join('/')} carry no measurement ${m[1]}`);
      }
    }
  });
});
