import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExportError, isExportError } from '../../src/errors';
import { copyExportBlob } from '../../src/pipeline/copyExportBlob';
import { MAX_RECOPIES } from '../../src/pipeline/finalizeRun';
import { handlePoisonMessage } from '../../src/pipeline/handlePoisonMessage';
import { parseCopyMessage, parseStatusMessage } from '../../src/pipeline/messages';
import { pollExportStatus } from '../../src/pipeline/pollExportStatus';
import type { ExportManifest, RunRecord } from '../../src/pipeline/ports';
import { type StartedRun, type StartRequest, startExports } from '../../src/pipeline/startExports';
import { superviseRuns } from '../../src/pipeline/superviseRuns';
import {
  type DepsOverrides,
  drain,
  type FakeDeps,
  failed,
  fakeCrc64,
  makeDeps,
  makeManifest,
  operationUrl,
  running,
  SAS_SECRET,
  succeeded,
} from '../support/fakes';

const USD_ONLY: DepsOverrides = { env: { EXPORT_CURRENCIES: 'USD' } };

/** Starts the configured exports by hand. */
function start(deps: FakeDeps, request: Partial<StartRequest> = {}): Promise<StartedRun[]> {
  return startExports({ trigger: 'manual', ...request }, deps);
}

/** Starts exactly one run (USD, current) and returns its id. */
async function startOne(deps: FakeDeps, request: Partial<StartRequest> = {}): Promise<string> {
  const started = await start(deps, { currencies: ['USD'], billingPeriods: ['current'], ...request });
  assert.equal(started.length, 1);
  return started[0]!.runId;
}

/** Delivers the next pending status message. */
async function deliverStatus(deps: FakeDeps): Promise<{ delaySeconds: number }> {
  const next = deps.queue.pendingStatus.shift();
  assert.ok(next !== undefined, 'a status message is pending');
  deps.clock.advanceSeconds(next.delaySeconds);
  await pollExportStatus(parseStatusMessage(next.raw), deps);
  return next;
}

/** A USD run whose export succeeded with the default three blobs: copying, its copy messages pending. */
async function copyingRun(): Promise<{ deps: FakeDeps; runId: string }> {
  const deps = makeDeps(USD_ONLY);
  const runId = await startOne(deps);
  deps.graph.scriptOperation('*', succeeded(makeManifest()));
  await deliverStatus(deps);
  return { deps, runId };
}

/** Delivers one copy message (raw body as it travels through the queue). */
function deliverCopy(deps: FakeDeps, raw: string): Promise<void> {
  return copyExportBlob(parseCopyMessage(raw), deps);
}

/** Delivers the copy message the fan-in sent again for `victim`: it copies over what is there, and the run succeeds. */
async function deliverRecopy(deps: FakeDeps, runId: string, raw: string, victim: string): Promise<void> {
  await deliverCopy(deps, raw);
  assert.equal(run(deps, runId).status, 'succeeded');
  assert.deepEqual(deps.copier.calls.at(-1), {
    sourceUrl: deps.copier.calls.at(-1)?.sourceUrl,
    destinationPath: victim,
    replace: true,
  });
}

function run(deps: FakeDeps, runId: string): RunRecord {
  return deps.ledger.run(runId);
}

function expectedPath(runId: string, billingMonth = '2024-10', currency = 'USD'): string {
  return `unbilled-usage/billingMonth=${billingMonth}/currency=${currency}/attributeSet=full/run=${runId}`;
}

function latestPathOf(billingMonth = '2024-10', currency = 'USD'): string {
  return `unbilled-usage/billingMonth=${billingMonth}/currency=${currency}/attributeSet=full/latest.json`;
}

/** Drives one run from start to its end with a scripted succeeded manifest. */
async function completeRun(deps: FakeDeps, manifest: ExportManifest, request: Partial<StartRequest> = {}) {
  const before = deps.graph.startCalls.length;
  const runId = await startOne(deps, request);
  deps.graph.scriptOperation(operationUrl(before + 1), succeeded(manifest));
  const drained = await drain(deps, deps.queue);
  assert.deepEqual(drained.errors, []);
  return runId;
}

describe('startExports', () => {
  it('starts one waiting run per currency and period, each with a status check delayed by Retry-After', async () => {
    const deps = makeDeps({ env: { EXPORT_BILLING_PERIODS: 'current,last' } });
    deps.graph.scriptStart(
      { retryAfterSeconds: 45 },
      { retryAfterSeconds: 45 },
      { retryAfterSeconds: 45 },
      { retryAfterSeconds: 45 },
    );

    const started = await start(deps);

    assert.deepEqual(
      started.map((s) => [s.currency, s.billingPeriod, s.attributeSet, s.status, s.alreadyInFlight]),
      [
        ['USD', 'current', 'full', 'waiting', false],
        ['USD', 'last', 'full', 'waiting', false],
        ['EUR', 'current', 'full', 'waiting', false],
        ['EUR', 'last', 'full', 'waiting', false],
      ],
    );
    assert.deepEqual(deps.graph.startCalls, [
      { currencyCode: 'USD', billingPeriod: 'current', attributeSet: 'full' },
      { currencyCode: 'USD', billingPeriod: 'last', attributeSet: 'full' },
      { currencyCode: 'EUR', billingPeriod: 'current', attributeSet: 'full' },
      { currencyCode: 'EUR', billingPeriod: 'last', attributeSet: 'full' },
    ]);
    assert.equal(new Set(started.map((s) => s.runId)).size, 4, 'run ids are unique');
    assert.deepEqual(
      deps.queue.statusSent.map((s) => [s.message, s.delaySeconds]),
      started.map((s) => [{ version: 1, kind: 'poll', runId: s.runId, attempt: 0 }, 45]),
    );
    for (const [index, s] of started.entries()) {
      const row = run(deps, s.runId);
      assert.equal(row.status, 'waiting');
      assert.equal(row.trigger, 'manual');
      assert.equal(row.operationUrl, operationUrl(index + 1));
      assert.equal(row.operationId, `op-${index + 1}`);
      assert.equal(row.startedAt, '2024-10-08T06:00:00.000Z');
    }
    assert.equal(deps.telemetry.started.length, 4);
    assert.equal(deps.destination.ensureContainerCalls, 1);
  });

  it('delays the first status check by EXPORT_POLL_INITIAL_SECONDS when Graph sends no Retry-After', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD', EXPORT_POLL_INITIAL_SECONDS: '20' } });
    await start(deps);
    assert.deepEqual(
      deps.queue.statusSent.map((s) => s.delaySeconds),
      [20],
    );
  });

  it('caps a Retry-After longer than EXPORT_POLL_MAX_SECONDS', async () => {
    const deps = makeDeps(USD_ONLY);
    deps.graph.scriptStart({ retryAfterSeconds: 5000 });
    await start(deps);
    assert.equal(deps.queue.statusSent[0]?.delaySeconds, 900);
  });

  it('starts nothing while a run for the same currency and period is in flight, and returns that run', async () => {
    const deps = makeDeps();
    const first = await start(deps);
    deps.clock.advanceSeconds(60);

    const second = await start(deps, { trigger: 'schedule' });

    assert.equal(deps.graph.startCalls.length, 2, 'no new Graph export');
    assert.deepEqual(
      second.map((s) => [s.runId, s.status, s.alreadyInFlight]),
      first.map((s) => [s.runId, 'waiting', true]),
    );
    assert.equal(deps.ledger.runs.size, 2);
    assert.equal(deps.queue.statusSent.length, 2, 'no new status check');
    assert.ok(
      deps.logger.at('info').some((l) => /already in flight/.test(l.message) && l.fields.runId === first[0]!.runId),
    );
  });

  it('starts a new export once the previous run for the same currency and period is terminal', async () => {
    const deps = makeDeps(USD_ONLY);
    const firstId = await startOne(deps);
    deps.graph.scriptOperation('*', failed('5000', 'No data available'));
    await drain(deps, deps.queue);
    assert.equal(run(deps, firstId).status, 'noData');

    const [second] = await start(deps);

    assert.equal(second?.alreadyInFlight, false);
    assert.notEqual(second?.runId, firstId);
    assert.equal(deps.graph.startCalls.length, 2);
  });

  it('replaces the in-flight lock of a run stuck for longer than the maximum wait plus the copy allowance', async () => {
    const deps = makeDeps(USD_ONLY);
    const stuckId = await startOne(deps);

    deps.clock.advanceHours(6 + 6 - 0.1);
    const [stillHeld] = await start(deps);
    assert.equal(stillHeld?.runId, stuckId);
    assert.equal(stillHeld?.alreadyInFlight, true);

    deps.clock.advanceHours(0.2);
    const [replaced] = await start(deps);
    assert.equal(replaced?.alreadyInFlight, false);
    assert.notEqual(replaced?.runId, stuckId);
    assert.equal(deps.ledger.locks.get('USD-current-full')?.runId, replaced?.runId);
    assert.equal(deps.graph.startCalls.length, 2);
  });

  it('keeps the run starting and schedules a start message with the Retry-After of a transient failure', async () => {
    const deps = makeDeps(USD_ONLY);
    deps.graph.scriptStart(
      new ExportError('GRAPH_THROTTLED', 'Microsoft Graph: POST .../export answered 429. Throttled by Graph.', {
        retryable: true,
        status: 429,
        retryAfterSeconds: 120,
      }),
    );

    const [started] = await start(deps);

    assert.equal(started?.status, 'starting');
    const runId = started!.runId;
    assert.deepEqual(
      deps.queue.statusSent.map((s) => [s.message, s.delaySeconds]),
      [[{ version: 1, kind: 'start', runId, attempt: 1 }, 120]],
    );
    assert.equal(run(deps, runId).status, 'starting');
    assert.match(run(deps, runId).lastError ?? '', /answered 429/);
    assert.equal(deps.telemetry.failed.length, 0);

    await deliverStatus(deps);

    assert.equal(deps.graph.startCalls.length, 2, 'the start message asks Graph again');
    assert.equal(run(deps, runId).status, 'waiting');
    assert.deepEqual(
      deps.queue.pendingStatus.map((s) => s.message),
      [{ version: 1, kind: 'poll', runId, attempt: 0 }],
    );
  });

  it('fails the run at once and releases the lock when Graph refuses the start (403)', async () => {
    const deps = makeDeps(USD_ONLY);
    deps.graph.scriptStart(
      new ExportError(
        'GRAPH_FORBIDDEN',
        'Microsoft Graph: POST .../export answered 403. The calling identity needs PartnerBilling.Read.All.',
        { status: 403 },
      ),
    );

    const [started] = await start(deps);

    assert.equal(started?.status, 'failed');
    const row = run(deps, started!.runId);
    assert.equal(row.status, 'failed');
    assert.equal(row.errorCode, 'GRAPH_FORBIDDEN');
    assert.match(row.error ?? '', /PartnerBilling\.Read\.All/);
    assert.ok(row.completedAt !== undefined);
    assert.equal(deps.queue.statusSent.length, 0, 'no status check for a failed start');
    assert.equal(deps.ledger.locks.size, 0, 'the lock is released');
    assert.equal(deps.telemetry.failed.length, 1);
    assert.equal(deps.telemetry.failed[0]?.run.errorCode, 'GRAPH_FORBIDDEN');
    assert.equal(deps.logger.at('error').length, 1);

    const [next] = await start(deps);
    assert.equal(next?.alreadyInFlight, false);
    assert.equal(next?.status, 'waiting');
  });
});

describe('pollExportStatus', () => {
  it('re-enqueues the status check with the Retry-After delay while the export runs', async () => {
    const deps = makeDeps(USD_ONLY);
    const runId = await startOne(deps);
    deps.graph.scriptOperation('*', running(75));

    await deliverStatus(deps);

    assert.deepEqual(
      deps.queue.pendingStatus.map((s) => [s.message, s.delaySeconds]),
      [[{ version: 1, kind: 'poll', runId, attempt: 1 }, 75]],
    );
    assert.equal(run(deps, runId).status, 'waiting');
    assert.equal(run(deps, runId).polls, 1);
    assert.deepEqual(deps.graph.operationCalls, [operationUrl(1)]);
  });

  it('backs off from EXPORT_POLL_INITIAL_SECONDS, doubling up to EXPORT_POLL_MAX_SECONDS, without Retry-After', async () => {
    const deps = makeDeps({
      env: { EXPORT_CURRENCIES: 'USD', EXPORT_POLL_INITIAL_SECONDS: '30', EXPORT_POLL_MAX_SECONDS: '600' },
    });
    await startOne(deps);
    deps.graph.scriptOperation('*', running());

    for (let i = 0; i < 7; i++) await deliverStatus(deps);

    assert.deepEqual(
      deps.queue.statusSent.map((s) => s.delaySeconds),
      [30, 30, 60, 120, 240, 480, 600, 600],
    );
    assert.deepEqual(
      deps.queue.statusSent.map((s) => (s.message.kind === 'poll' ? s.message.attempt : -1)),
      [0, 1, 2, 3, 4, 5, 6, 7],
    );
  });

  it('logs an unknown operation status as a warning and keeps polling', async () => {
    const deps = makeDeps(USD_ONLY);
    const runId = await startOne(deps);
    deps.graph.scriptOperation('*', running(60, 'unknownFutureValue'));

    await deliverStatus(deps);

    const warnings = deps.logger.at('warn');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!.message, /unknown operation status "unknownFutureValue"; treated as still running/);
    assert.equal(warnings[0]!.fields.runId, runId);
    assert.equal(run(deps, runId).status, 'waiting');
    assert.equal(deps.queue.pendingStatus.length, 1);
  });

  it('fails the run with EXPORT_TIMEOUT and a clear reason once the maximum wait is exceeded', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD', EXPORT_MAX_WAIT_HOURS: '1' } });
    const runId = await startOne(deps);
    deps.graph.scriptOperation('*', running(600));

    const drained = await drain(deps, deps.queue);

    const row = run(deps, runId);
    assert.equal(row.status, 'failed');
    assert.equal(row.errorCode, 'EXPORT_TIMEOUT');
    assert.match(
      row.error ?? '',
      /still running after 1\.01 h \(EXPORT_MAX_WAIT_HOURS=1\); gave up after 7 status checks/,
    );
    assert.equal(drained.statusDelivered, 7);
    assert.equal(deps.queue.pendingStatus.length, 0, 'no further status check');
    assert.equal(deps.telemetry.failed[0]?.run.errorCode, 'EXPORT_TIMEOUT');
    assert.equal(deps.ledger.locks.size, 0);
  });

  it('ends the run noData with a warning, an ExportRunCompleted event and the reason recorded when Graph fails with 5000', async () => {
    const deps = makeDeps(USD_ONLY);
    const runId = await startOne(deps);
    deps.graph.scriptOperation('*', failed('5000', 'No data available'));

    await deliverStatus(deps);

    const row = run(deps, runId);
    assert.equal(row.status, 'noData');
    assert.equal(row.errorCode, 'EXPORT_NO_DATA');
    assert.match(row.error ?? '', /code 5000: No data available/);
    assert.equal(deps.logger.at('error').length, 0, 'noData is no error');
    assert.equal(deps.logger.at('warn').length, 1);
    assert.equal(deps.telemetry.failed.length, 0);
    assert.equal(deps.telemetry.completed.length, 1);
    assert.equal(deps.telemetry.completed[0]?.run.status, 'noData');
    assert.equal(deps.telemetry.completed[0]?.measurements.polls, 1);
    assert.equal(deps.ledger.locks.size, 0);
  });

  it('fails the run with an error log and ExportRunFailed when Graph fails with another code', async () => {
    const deps = makeDeps(USD_ONLY);
    const runId = await startOne(deps);
    deps.graph.scriptOperation('*', failed('8001', 'Internal processing error'));

    await deliverStatus(deps);

    const row = run(deps, runId);
    assert.equal(row.status, 'failed');
    assert.equal(row.errorCode, 'EXPORT_FAILED');
    assert.match(row.error ?? '', /failed with code 8001: Internal processing error/);
    assert.equal(deps.logger.at('error').length, 1);
    assert.equal(deps.telemetry.completed.length, 0);
    assert.deepEqual(
      deps.telemetry.failed.map((f) => [f.run.runId, f.run.status, f.run.errorCode]),
      [[runId, 'failed', 'EXPORT_FAILED']],
    );
  });

  it('schedules the next status check itself when Graph throttles it with a Retry-After', async () => {
    const deps = makeDeps(USD_ONLY);
    const runId = await startOne(deps);
    deps.graph.scriptOperation(
      '*',
      new ExportError('GRAPH_THROTTLED', 'Microsoft Graph answered 429.', { retryable: true, retryAfterSeconds: 300 }),
      running(),
    );

    await deliverStatus(deps);

    assert.deepEqual(
      deps.queue.pendingStatus.map((s) => [s.message, s.delaySeconds]),
      [[{ version: 1, kind: 'poll', runId, attempt: 1 }, 300]],
    );
    assert.equal(run(deps, runId).status, 'waiting');
    assert.equal(run(deps, runId).polls, 1, 'a throttled check counts, so its duplicates cannot fork the chain');
  });

  it('rethrows a transient status-check failure without Retry-After so the queue retries, noting it as lastError', async () => {
    const deps = makeDeps(USD_ONLY);
    const runId = await startOne(deps);
    deps.graph.scriptOperation('*', new ExportError('GRAPH_UNAVAILABLE', 'Graph answered 503.', { retryable: true }));

    await assert.rejects(
      deliverStatus(deps),
      (error: unknown) => isExportError(error) && error.code === 'GRAPH_UNAVAILABLE',
    );

    assert.equal(run(deps, runId).status, 'waiting');
    assert.equal(run(deps, runId).lastError, 'GRAPH_UNAVAILABLE: Graph answered 503.');
  });

  it('drops a status check for an unknown run, with an error', async () => {
    const deps = makeDeps(USD_ONLY);
    const unknown = '20241008T060000000Z-deadbeef';

    await pollExportStatus({ version: 1, kind: 'poll', runId: unknown, attempt: 0 }, deps);

    assert.deepEqual(deps.graph.operationCalls, []);
    assert.equal(deps.queue.statusSent.length, 0);
    assert.equal(deps.ledger.runs.size, 0);
    assert.equal(deps.logger.at('error')[0]?.fields.runId, unknown);
  });
});

describe('fan-out of a succeeded export', () => {
  it('sends one copy message per blob and records the run copying at its layout path', async () => {
    const deps = makeDeps(USD_ONLY);
    const runId = await startOne(deps);
    const manifest = makeManifest();
    deps.graph.scriptOperation('*', succeeded(manifest));

    await deliverStatus(deps);

    assert.deepEqual(
      deps.queue.copiesSent,
      manifest.blobs.map((b) => ({ version: 1, runId, blobName: b.name })),
    );
    const row = run(deps, runId);
    assert.equal(row.status, 'copying');
    assert.equal(row.path, `unbilled-usage/billingMonth=2024-10/currency=USD/attributeSet=full/run=${runId}`);
    assert.equal(row.billingMonth, '2024-10');
    assert.equal(row.blobCount, 3);
    assert.equal(row.eTag, manifest.eTag);
    assert.equal(row.manifestId, manifest.id);
    assert.equal(row.rootDirectory, manifest.rootDirectory, 'the root has no query string to drop');
    assert.deepEqual(
      (await deps.ledger.listBlobs(runId)).map((b) => [b.name, b.status]),
      manifest.blobs.map((b) => [b.name, 'pending']),
    );
    assert.equal(deps.queue.pendingStatus.length, 0, 'no further status check');
  });

  it('takes the billing month from the BillingMonth segment of the root, not from the start date', async () => {
    const deps = makeDeps({ ...USD_ONLY, start: '2024-11-01T00:30:00.000Z' });
    const runId = await startOne(deps);
    deps.graph.scriptOperation('*', succeeded(makeManifest()));
    await deliverStatus(deps);
    assert.equal(run(deps, runId).path, expectedPath(runId, '2024-10'));
  });

  it('takes the billing month of a current export from its start date when the root has no BillingMonth', async () => {
    const deps = makeDeps({ ...USD_ONLY, start: '2024-10-31T23:59:00.000Z' });
    const runId = await startOne(deps);
    deps.graph.scriptOperation(
      '*',
      succeeded(makeManifest({ rootDirectory: 'https://acct.blob.core.windows.net/exports/v1' })),
    );
    deps.clock.advanceHours(1);
    await deliverStatus(deps);
    assert.equal(run(deps, runId).billingMonth, '2024-10', 'the start date decides, not the time of the status check');
    assert.equal(run(deps, runId).path, expectedPath(runId, '2024-10'));
  });

  it('takes the previous December for a last export started in January without BillingMonth', async () => {
    const deps = makeDeps({ ...USD_ONLY, start: '2025-01-15T06:00:00.000Z' });
    const runId = await startOne(deps, { billingPeriods: ['last'] });
    deps.graph.scriptOperation(
      '*',
      succeeded(makeManifest({ rootDirectory: 'https://acct.blob.core.windows.net/exports/v1' })),
    );
    await deliverStatus(deps);
    assert.equal(run(deps, runId).path, expectedPath(runId, '2024-12'));
  });
});

describe('copyExportBlob and the fan-in', () => {
  it('copies every blob once and completes the run with manifest.json, latest.json and one ExportRunCompleted', async () => {
    const deps = makeDeps(USD_ONLY);
    const manifest = makeManifest();
    const runId = await completeRun(deps, manifest);
    const path = expectedPath(runId);

    assert.deepEqual(
      deps.copier.calls,
      manifest.blobs.map((b) => ({
        sourceUrl: `${manifest.rootDirectory}/${b.name}?${manifest.sasToken}`,
        destinationPath: `${path}/${b.name}`,
      })),
    );
    const sizes = manifest.blobs.map((b) => 1000 + `${path}/${b.name}`.length);
    const total = sizes.reduce((a, b) => a + b, 0);

    const row = run(deps, runId);
    assert.equal(row.status, 'succeeded');
    assert.equal(row.blobsCopied, 3);
    assert.equal(row.byteCount, total);
    assert.ok(row.completedAt !== undefined);

    assert.equal(deps.destination.writeCount(`${path}/manifest.json`), 1);
    assert.deepEqual(deps.destination.json(`${path}/manifest.json`), {
      manifestVersion: '1.0',
      runId,
      trigger: 'manual',
      currency: 'USD',
      billingPeriod: 'current',
      billingMonth: '2024-10',
      attributeSet: 'full',
      startedAt: '2024-10-08T06:00:00.000Z',
      completedAt: row.completedAt,
      graph: {
        operationId: 'op-1',
        manifestId: manifest.id,
        eTag: manifest.eTag,
        schemaVersion: '2',
        dataFormat: 'compressedJSON',
        createdDateTime: '2024-10-08T00:57:36.037Z',
        partnerTenantId: manifest.partnerTenantId,
      },
      blobCount: 3,
      byteCount: total,
      // Each with the content hash the copy reported (issue 14).
      blobs: manifest.blobs.map((b, i) => ({
        name: b.name,
        byteCount: sizes[i],
        contentCrc64: fakeCrc64(`gzip bytes of ${path}/${b.name}`),
      })),
      // Issue 10: new fields after the existing ones, which are unchanged.
      dataset: 'unbilledUsage',
      invoiceId: null,
    });
    const manifestText = deps.destination.blobs.get(`${path}/manifest.json`)?.body ?? '';
    assert.doesNotMatch(manifestText, /sig=|SECRET|sasToken/);

    assert.deepEqual(deps.destination.json(latestPathOf()), {
      runId,
      path,
      eTag: manifest.eTag,
      completedAt: row.completedAt,
    });
    assert.deepEqual(
      (await deps.destination.list(path)).map((b) => b.path),
      [...manifest.blobs.map((b) => `${path}/${b.name}`), `${path}/manifest.json`].sort(),
    );

    assert.equal(deps.telemetry.completed.length, 1);
    assert.equal(deps.telemetry.completed[0]?.run.status, 'succeeded');
    assert.deepEqual(deps.telemetry.completed[0]?.measurements, {
      durationMs: Date.parse(row.completedAt ?? '') - Date.parse(row.startedAt),
      blobCount: 3,
      byteCount: total,
      polls: 1,
    });
    assert.equal(deps.ledger.locks.size, 0);
  });

  it('completes an export with no blobs at once, with an empty manifest.json', async () => {
    const deps = makeDeps(USD_ONLY);
    const runId = await startOne(deps);
    deps.graph.scriptOperation('*', succeeded(makeManifest({ blobNames: [] })));

    await deliverStatus(deps);

    assert.equal(deps.queue.copiesSent.length, 0);
    assert.equal(run(deps, runId).status, 'succeeded');
    const written = deps.destination.json(`${expectedPath(runId)}/manifest.json`) as {
      blobCount: number;
      blobs: unknown[];
    };
    assert.equal(written.blobCount, 0);
    assert.deepEqual(written.blobs, []);
    assert.equal(deps.telemetry.completed.length, 1);
  });

  it('writes manifest.json only after every blob landed', async () => {
    const { deps, runId } = await copyingRun();
    const [first, second, third] = deps.queue.takeCopies();

    await deliverCopy(deps, first!);
    await deliverCopy(deps, second!);

    const path = expectedPath(runId);
    assert.equal(deps.destination.writeCount(`${path}/manifest.json`), 0);
    assert.equal(run(deps, runId).status, 'copying');
    assert.equal(run(deps, runId).blobsCopied, 2, 'progress is recorded');

    await deliverCopy(deps, third!);
    assert.equal(deps.destination.writeCount(`${path}/manifest.json`), 1);
    assert.equal(run(deps, runId).status, 'succeeded');
  });

  it('copies again a blob that went missing from the destination before completing, and counts the re-copy', async () => {
    const { deps, runId } = await copyingRun();
    const [first, second, third] = deps.queue.takeCopies();
    await deliverCopy(deps, first!);
    await deliverCopy(deps, second!);
    const path = expectedPath(runId);
    const lost = [...deps.destination.blobs.keys()].find((p) => p.startsWith(`${path}/`))!;
    deps.destination.blobs.delete(lost);

    await deliverCopy(deps, third!);
    assert.equal(run(deps, runId).status, 'copying');
    assert.equal(deps.destination.writeCount(`${path}/manifest.json`), 0);
    const again = deps.queue.takeCopies();
    assert.equal(again.length, 1, 'one copy message sent again, for the lost blob');
    const blobName = lost.slice(path.length + 1);
    assert.equal((await deps.ledger.getBlob(runId, blobName))?.recopies, 1);

    await deliverCopy(deps, again[0]!);
    assert.equal(run(deps, runId).status, 'succeeded');
    assert.ok(deps.destination.blobs.has(lost));
    assert.equal(deps.copier.calls.length, 4);
  });

  it('copies again a blob overwritten with other content of the same length before completion (issue 14)', async () => {
    const { deps, runId } = await copyingRun();
    const [first, second, third] = deps.queue.takeCopies();
    await deliverCopy(deps, first!);
    await deliverCopy(deps, second!);
    const path = expectedPath(runId);
    const victim = [...deps.destination.blobs.keys()].find((p) => p.startsWith(`${path}/`))!;
    const copied = deps.destination.blobs.get(victim)!;
    // Another writer replaces the blob with other bytes of the same length: only its ETag tells.
    deps.destination.put(victim, { ...copied, body: 'other bytes' });

    await deliverCopy(deps, third!);
    assert.equal(run(deps, runId).status, 'copying');
    assert.equal(deps.destination.writeCount(`${path}/manifest.json`), 0);
    const again = deps.queue.takeCopies();
    assert.equal(again.length, 1, 'one copy message sent again, for the overwritten blob');
    const blobName = victim.slice(path.length + 1);
    assert.equal((await deps.ledger.getBlob(runId, blobName))?.recopies, 1);
    assert.ok(deps.logger.at('warn').some((l) => /changed since their copy/.test(l.message)));

    await deliverRecopy(deps, runId, again[0]!, victim!);
    assert.equal(deps.destination.blobs.get(victim)?.body, `gzip bytes of ${victim}`, 'the copy is back');
    const written = deps.destination.json(`${path}/manifest.json`) as {
      blobs: Array<{ name: string; contentCrc64?: string }>;
    };
    assert.equal(written.blobs.find((b) => b.name === blobName)?.contentCrc64, fakeCrc64(`gzip bytes of ${victim}`));
  });

  it('copies again, replacing it, a blob whose copy did not carry the content type over, before completing', async () => {
    const { deps, runId } = await copyingRun();
    const path = expectedPath(runId);
    let victim: string | undefined;
    // The first copy of one blob lands without the source's content type (and the copier does not read it back).
    deps.copier.landed = (destinationPath, replace) => {
      if (replace || (victim !== undefined && destinationPath !== victim)) return {};
      victim = destinationPath;
      return { contentType: 'application/octet-stream' };
    };
    for (const raw of deps.queue.takeCopies()) await deliverCopy(deps, raw);
    assert.equal(run(deps, runId).status, 'copying');
    assert.equal(deps.destination.writeCount(`${path}/manifest.json`), 0);
    assert.ok(
      deps.logger.at('warn').some((l) => /changed since their copy/.test(l.message)),
      'the fan-in reports the blob',
    );
    const again = deps.queue.takeCopies();
    assert.equal(again.length, 1, 'one copy message sent again');

    await deliverRecopy(deps, runId, again[0]!, victim!);
    assert.equal(deps.destination.blobs.get(victim!)?.contentType, 'application/x-gzip');
  });

  it("takes each blob's Content-MD5 for manifest.json from the listing of the run folder when the copy recorded none", async () => {
    const { deps, runId } = await copyingRun();
    const md5 = (destinationPath: string) => Buffer.from(`md5 of ${destinationPath}`).toString('base64');
    deps.copier.landed = (destinationPath) => ({ contentMd5: md5(destinationPath) });
    for (const raw of deps.queue.takeCopies()) await deliverCopy(deps, raw);
    assert.equal(run(deps, runId).status, 'succeeded');
    const path = expectedPath(runId);
    const written = deps.destination.json(`${path}/manifest.json`) as {
      blobs: Array<{ name: string; contentMd5?: string }>;
    };
    assert.equal(written.blobs.length, 3);
    for (const blob of written.blobs) assert.equal(blob.contentMd5, md5(`${path}/${blob.name}`));
  });

  it('sends one copy of an overwritten blob when two finishers find the change at once, so its re-copy does not look like another change', async () => {
    const { deps, runId } = await copyingRun();
    const [first, second, third] = deps.queue.takeCopies();
    await deliverCopy(deps, first!);
    const path = expectedPath(runId);
    const victim = [...deps.destination.blobs.keys()].find((p) => p.startsWith(`${path}/`))!;
    deps.destination.put(victim, { ...deps.destination.blobs.get(victim)!, body: 'other bytes' });
    // The last two copies finish together: each finisher lists the folder and finds the overwritten blob.
    await Promise.all([deliverCopy(deps, second!), deliverCopy(deps, third!)]);
    const again = deps.queue.takeCopies();
    assert.equal(again.length, 1, 'one copy message sent again, not one per finisher');
    const blobName = victim.slice(path.length + 1);
    assert.equal((await deps.ledger.getBlob(runId, blobName))?.recopies, 1);
    await deliverCopy(deps, again[0]!);
    assert.equal(run(deps, runId).status, 'succeeded');
  });

  it(`fails the run with COPY_FAILED naming a blob another writer keeps overwriting with the same length, after ${MAX_RECOPIES} re-copies`, async () => {
    const { deps, runId } = await copyingRun();
    const path = expectedPath(runId);
    const victim = `${path}/${makeManifest().blobs[0]!.name}`;
    const copy = deps.copier.copy.bind(deps.copier);
    deps.copier.copy = async (input) => {
      const result = await copy(input);
      const landed = deps.destination.blobs.get(input.destinationPath)!;
      if (input.destinationPath === victim) deps.destination.put(victim, { ...landed, body: 'rewritten' });
      return result;
    };
    for (let round = 0; round < 20 && deps.queue.pendingCopies.length > 0; round++) {
      for (const raw of deps.queue.takeCopies()) await deliverCopy(deps, raw);
    }

    const row = run(deps, runId);
    assert.equal(row.status, 'failed');
    assert.equal(row.errorCode, 'COPY_FAILED');
    assert.match(
      row.error ?? '',
      new RegExp(
        `${makeManifest().blobs[0]!.name} was copied ${MAX_RECOPIES + 1} times, but .* rewritten since the copy`,
      ),
    );
    assert.equal(deps.destination.writeCount(`${path}/manifest.json`), 0);
  });

  it(`fails the run with COPY_FAILED once a blob went missing after ${MAX_RECOPIES} re-copies, instead of copying it for ever`, async () => {
    const { deps, runId } = await copyingRun();
    const path = expectedPath(runId);
    const victim = `${path}/${makeManifest().blobs[0]!.name}`;
    // Something outside the run (a lifecycle rule, say) removes the same blob each time right after it is copied:
    // the listing never shows it.
    const list = deps.destination.list.bind(deps.destination);
    deps.destination.list = async (prefix) => (await list(prefix)).filter((b) => b.path !== victim);
    for (let round = 0; round < 20 && deps.queue.pendingCopies.length > 0; round++) {
      for (const raw of deps.queue.takeCopies()) await deliverCopy(deps, raw);
    }

    const row = run(deps, runId);
    assert.equal(row.status, 'failed');
    assert.equal(row.errorCode, 'COPY_FAILED');
    assert.match(row.error ?? '', new RegExp(`copied ${MAX_RECOPIES + 1} times, but .* still does not hold it`));
    assert.equal(deps.copier.calls.filter((c) => c.destinationPath === victim).length, MAX_RECOPIES + 1);
    assert.equal(deps.destination.writeCount(`${path}/manifest.json`), 0);
    assert.equal(deps.telemetry.failed.length, 1);
  });

  it('lets the supervisor fail with COPY_FAILED a run whose last copy handler stopped before it met the limit', async () => {
    const { deps, runId } = await copyingRun();
    const path = expectedPath(runId);
    const victim = `${path}/${makeManifest().blobs[0]!.name}`;
    const list = deps.destination.list.bind(deps.destination);
    let outage = false;
    deps.destination.list = async (prefix) => {
      if (outage) throw new ExportError('DESTINATION_UNAVAILABLE', 'The server is busy.', { retryable: true });
      return (await list(prefix)).filter((b) => b.path !== victim);
    };
    for (let round = 0; round < MAX_RECOPIES; round++) {
      for (const raw of deps.queue.takeCopies()) await deliverCopy(deps, raw);
    }
    // The last re-copy lands, then its fan-in meets an outage and the message is lost with its worker.
    const last = deps.queue.takeCopies();
    assert.equal(last.length, 1);
    outage = true;
    await assert.rejects(deliverCopy(deps, last[0]!));
    outage = false;
    assert.equal(run(deps, runId).status, 'copying');

    deps.clock.advanceSeconds(deps.config.supervision.stallMinutes * 60 + 1);
    const report = await superviseRuns(deps);
    assert.deepEqual({ ended: report.ended, errors: report.errors }, { ended: 1, errors: 0 });
    const row = run(deps, runId);
    assert.equal(row.status, 'failed');
    assert.equal(row.errorCode, 'COPY_FAILED');
    assert.equal(deps.telemetry.failed.length, 1);
  });

  it('does not copy a blob again when its copy message is redelivered', async () => {
    const { deps, runId } = await copyingRun();
    const copies = deps.queue.takeCopies();

    await deliverCopy(deps, copies[0]!);
    await deliverCopy(deps, copies[0]!);
    assert.equal(deps.copier.calls.length, 1);

    for (const raw of copies) await deliverCopy(deps, raw);
    for (const raw of copies) await deliverCopy(deps, raw);

    assert.equal(deps.copier.calls.length, 3);
    assert.equal(run(deps, runId).status, 'succeeded');
    assert.equal(deps.destination.writeCount(`${expectedPath(runId)}/manifest.json`), 1);
    assert.equal(deps.telemetry.completed.length, 1);
  });

  it('completes exactly once when every copy message and the last status message are delivered twice and interleaved', async () => {
    const deps = makeDeps(USD_ONLY);
    const runId = await startOne(deps);
    deps.graph.scriptOperation('*', running(10), succeeded(makeManifest()));
    await deliverStatus(deps);
    const lastStatus = deps.queue.pendingStatus.shift()!;
    deps.clock.advanceSeconds(lastStatus.delaySeconds);

    await pollExportStatus(parseStatusMessage(lastStatus.raw), deps);
    const copies = deps.queue.takeCopies();
    assert.equal(copies.length, 3);

    await Promise.all([
      ...copies.map((raw) => deliverCopy(deps, raw)),
      pollExportStatus(parseStatusMessage(lastStatus.raw), deps),
      ...[...copies].reverse().map((raw) => deliverCopy(deps, raw)),
    ]);

    const path = expectedPath(runId);
    assert.equal(run(deps, runId).status, 'succeeded');
    assert.equal(deps.destination.writeCount(`${path}/manifest.json`), 1);
    assert.equal(deps.destination.writeCount(latestPathOf()), 1);
    assert.equal(deps.telemetry.completed.length, 1);
    assert.equal(deps.telemetry.completed[0]?.run.status, 'succeeded');
    assert.equal(deps.queue.copiesSent.length, 3, 'the duplicate status check sent no more copies');
    assert.equal(run(deps, runId).blobsCopied, 3);
  });

  it('completes exactly once whatever the timing of the last two copies', async () => {
    for (let lag = 0; lag <= 24; lag++) {
      const deps = makeDeps(USD_ONLY);
      const runId = await startOne(deps);
      const manifest = makeManifest();
      deps.graph.scriptOperation('*', succeeded(manifest));
      await deliverStatus(deps);
      const [first, second, third] = deps.queue.takeCopies();
      await deliverCopy(deps, first!);
      const slowName = manifest.blobs[2]!.name;
      deps.copier.delayTicks = (destinationPath) => (destinationPath.endsWith(slowName) ? lag : 0);

      await Promise.all([deliverCopy(deps, second!), deliverCopy(deps, third!)]);

      assert.equal(run(deps, runId).status, 'succeeded', `the run completes when the last copy lags ${lag} ticks`);
      assert.equal(deps.destination.writeCount(`${expectedPath(runId)}/manifest.json`), 1);
      assert.equal(deps.telemetry.completed.length, 1);
    }
  });

  it('completes the run when a slower worker records its progress just before the last copy claims the fan-in', async () => {
    const { deps, runId } = await copyingRun();
    const [first, second, third] = deps.queue.takeCopies();
    await deliverCopy(deps, first!);
    await deliverCopy(deps, second!);
    // The worker of the second blob saw the third one pending and writes its (stale) progress late,
    // between the last worker's read of the run and its ETag-conditional claim.
    deps.ledger.beforeConditionalUpdate = async () => {
      await deps.ledger.updateRun(runId, { blobsCopied: 2 });
    };

    await deliverCopy(deps, third!);

    assert.equal(run(deps, runId).status, 'succeeded', 'no worker is left to finish the run later');
    assert.equal(deps.destination.writeCount(`${expectedPath(runId)}/manifest.json`), 1);
    assert.equal(run(deps, runId).blobsCopied, 3);
    assert.equal(deps.telemetry.completed.length, 1);
  });

  it('ends the run succeeded even when the copies finish before the status check records copying', async () => {
    const deps = makeDeps(USD_ONLY);
    const runId = await startOne(deps);
    deps.graph.scriptOperation('*', succeeded(makeManifest()));
    // Workers on other instances pick the copy messages up at once.
    deps.queue.onCopies = async () => {
      for (const raw of deps.queue.takeCopies()) await deliverCopy(deps, raw);
    };

    await deliverStatus(deps);

    assert.equal(deps.destination.writeCount(`${expectedPath(runId)}/manifest.json`), 1);
    assert.equal(run(deps, runId).status, 'succeeded');
    assert.equal(deps.telemetry.completed.length, 1);
  });

  it('ends the run unchanged, copying nothing and writing no folder, when the data eTag equals latest.json', async () => {
    const deps = makeDeps(USD_ONLY);
    const manifest = makeManifest();
    const firstId = await completeRun(deps, manifest);
    const before = await deps.destination.list('unbilled-usage/');
    deps.clock.advanceHours(24);

    const secondId = await completeRun(deps, { ...manifest, id: 'another-manifest-id' });

    const row = run(deps, secondId);
    assert.equal(row.status, 'unchanged');
    assert.equal(row.eTag, manifest.eTag);
    assert.equal(row.path, undefined, 'no run folder');
    assert.equal(deps.queue.copiesSent.filter((c) => c.runId === secondId).length, 0);
    assert.equal(deps.copier.calls.length, 3, 'only the first run copied');
    assert.deepEqual(await deps.destination.list('unbilled-usage/'), before, 'the destination is as it was');
    assert.equal((deps.destination.json(latestPathOf()) as { runId: string }).runId, firstId);
    assert.deepEqual(
      deps.telemetry.completed.map((c) => [c.run.runId, c.run.status]),
      [
        [firstId, 'succeeded'],
        [secondId, 'unchanged'],
      ],
    );
    assert.equal(deps.ledger.locks.size, 0);
  });

  it('copies anyway when a manual run asks for force, and points latest.json at the new run', async () => {
    const deps = makeDeps(USD_ONLY);
    const manifest = makeManifest();
    await completeRun(deps, manifest);
    deps.clock.advanceHours(1);

    const secondId = await completeRun(deps, manifest, { force: true });

    assert.equal(run(deps, secondId).status, 'succeeded');
    assert.equal(deps.copier.calls.length, 6);
    assert.equal(deps.destination.writeCount(`${expectedPath(secondId)}/manifest.json`), 1);
    assert.equal((deps.destination.json(latestPathOf()) as { runId: string }).runId, secondId);
  });

  it('copies a new data version (another eTag) into a new run folder', async () => {
    const deps = makeDeps(USD_ONLY);
    await completeRun(deps, makeManifest());
    deps.clock.advanceHours(24);

    const secondId = await completeRun(deps, makeManifest({ eTag: 'newer-data-version' }));

    assert.equal(run(deps, secondId).status, 'succeeded');
    assert.deepEqual(deps.destination.json(latestPathOf()), {
      runId: secondId,
      path: expectedPath(secondId),
      eTag: 'newer-data-version',
      completedAt: run(deps, secondId).completedAt,
    });
  });

  it('fetches the operation again for a fresh SAS and retries the copy when the source SAS expired', async () => {
    const deps = makeDeps(USD_ONLY);
    const runId = await startOne(deps);
    const original = makeManifest({ sasToken: 'sv=2021-08-06&se=2024-10-08T07%3A00%3A00Z&sr=d&sp=rl&sig=OLDSECRET' });
    const refreshed = { ...original, sasToken: 'sv=2021-08-06&se=2024-10-08T09%3A00%3A00Z&sr=d&sp=rl&sig=NEWSECRET' };
    deps.graph.scriptOperation('*', succeeded(original), succeeded(refreshed));
    await deliverStatus(deps);
    deps.copier.expireSas(1);

    const drained = await drain(deps, deps.queue);

    assert.deepEqual(drained.errors, []);
    assert.deepEqual(deps.graph.operationCalls, [operationUrl(1), operationUrl(1)], 'one refresh');
    const name = original.blobs[0]!.name;
    assert.deepEqual(
      deps.copier.calls.slice(0, 2).map((c) => c.sourceUrl),
      [
        `${original.rootDirectory}/${name}?${original.sasToken}`,
        `${original.rootDirectory}/${name}?${refreshed.sasToken}`,
      ],
    );
    assert.ok(
      deps.copier.calls.slice(2).every((c) => c.sourceUrl.endsWith('sig=NEWSECRET')),
      'later copies use the fresh SAS',
    );
    assert.equal(run(deps, runId).status, 'succeeded');
  });

  it('fails the run when the manifest fetched for a fresh SAS describes other data', async () => {
    const deps = makeDeps(USD_ONLY);
    const runId = await startOne(deps);
    deps.graph.scriptOperation('*', succeeded(makeManifest()), succeeded(makeManifest({ eTag: 'changed-meanwhile' })));
    await deliverStatus(deps);
    deps.copier.expireSas(1);

    await deliverCopy(deps, deps.queue.takeCopies()[0]!);

    const row = run(deps, runId);
    assert.equal(row.status, 'failed');
    assert.equal(row.errorCode, 'MANIFEST_INVALID');
    assert.match(row.error ?? '', /the Graph manifest changed \(eTag 69D0qrTA8NTziitwV -> changed-meanwhile\)/);
    assert.equal(deps.telemetry.failed.length, 1);
  });

  it('rethrows a retryable copy error so the queue retries, recording it (redacted) as lastError', async () => {
    const deps = makeDeps(USD_ONLY);
    const runId = await startOne(deps);
    const manifest = makeManifest();
    deps.graph.scriptOperation('*', succeeded(manifest));
    await deliverStatus(deps);
    const failure = new ExportError(
      'DESTINATION_UNAVAILABLE',
      `The destination answered 503 while copying ${manifest.rootDirectory}/x.json.gz?sv=2021-08-06&sig=${SAS_SECRET}`,
      { retryable: true, status: 503 },
    );
    deps.copier.failNext(failure);
    const [raw] = deps.queue.takeCopies();

    await assert.rejects(deliverCopy(deps, raw!), (error: unknown) => error === failure);

    const row = run(deps, runId);
    assert.equal(row.status, 'copying');
    assert.match(row.lastError ?? '', /^DESTINATION_UNAVAILABLE: The destination answered 503/);
    assert.doesNotMatch(row.lastError ?? '', /sig=|SECRET/);

    await deliverCopy(deps, raw!);
    assert.equal((await deps.ledger.getBlob(runId, manifest.blobs[0]!.name))?.status, 'copied', 'the retry copies it');
  });
});

describe('handlePoisonMessage', () => {
  it('fails the run with MESSAGE_POISONED and the last error in the reason', async () => {
    const deps = makeDeps(USD_ONLY);
    const runId = await startOne(deps);
    const manifest = makeManifest();
    deps.graph.scriptOperation('*', succeeded(manifest));
    await deliverStatus(deps);
    deps.copier.failNext(new ExportError('COPY_FAILED', 'The source answered 500.', { retryable: true }), 5);
    const [raw] = deps.queue.takeCopies();
    for (let i = 0; i < 5; i++) await assert.rejects(deliverCopy(deps, raw!));

    await handlePoisonMessage('export-copy-poison', Buffer.from(raw!).toString('base64'), deps);

    const row = run(deps, runId);
    assert.equal(row.status, 'failed');
    assert.equal(row.errorCode, 'MESSAGE_POISONED');
    assert.match(
      row.error ?? '',
      new RegExp(`the copy of ${manifest.blobs[0]!.name.replace(/\./g, '\\.')} failed repeatedly`),
    );
    assert.match(row.error ?? '', /reached export-copy-poison; last error: COPY_FAILED: The source answered 500\./);
    assert.deepEqual(
      deps.telemetry.poisoned.map((p) => [p.queue, p.runId]),
      [['export-copy-poison', runId]],
    );
    assert.equal(deps.telemetry.failed[0]?.run.errorCode, 'MESSAGE_POISONED');
    assert.equal(deps.ledger.locks.size, 0);

    // The remaining copies of the failed run do nothing.
    for (const rest of deps.queue.takeCopies()) await deliverCopy(deps, rest);
    assert.equal(deps.copier.calls.length, 5);
  });

  it('fails a run whose status check was poisoned', async () => {
    const deps = makeDeps(USD_ONLY);
    const runId = await startOne(deps);
    const [poll] = deps.queue.takeStatus();

    await handlePoisonMessage('export-status-poison', poll!.raw, deps);

    assert.equal(run(deps, runId).status, 'failed');
    assert.match(run(deps, runId).error ?? '', /a status check failed repeatedly and reached export-status-poison/);
  });

  it('records a poisoned message that names no run, and raises the poison event', async () => {
    const deps = makeDeps(USD_ONLY);

    await handlePoisonMessage('export-status-poison', 'this is not a message', deps);

    assert.equal(deps.ledger.rejected.length, 1);
    assert.equal(deps.ledger.rejected[0]?.queue, 'export-status-poison');
    assert.match(deps.ledger.rejected[0]?.reason ?? '', /names no run/);
    assert.match(deps.ledger.rejected[0]?.excerpt ?? '', /this is not a message/);
    assert.deepEqual(
      deps.telemetry.poisoned.map((p) => [p.queue, p.runId]),
      [['export-status-poison', undefined]],
    );
    assert.equal(deps.logger.at('error').length, 1);
  });

  it('records a poisoned message of an unknown run', async () => {
    const deps = makeDeps(USD_ONLY);
    const raw = JSON.stringify({ version: 1, runId: '20241008T060000000Z-0000abcd', blobName: 'x.json.gz' });

    await handlePoisonMessage('export-copy-poison', raw, deps);

    assert.equal(deps.ledger.rejected.length, 1);
    assert.match(deps.ledger.rejected[0]?.reason ?? '', /unknown run 20241008T060000000Z-0000abcd/);
  });

  it('leaves a run that already ended as it is', async () => {
    const deps = makeDeps(USD_ONLY);
    const runId = await completeRun(deps, makeManifest());
    const raw = JSON.stringify(deps.queue.copiesSent[0]);

    await handlePoisonMessage('export-copy-poison', raw, deps);

    assert.equal(run(deps, runId).status, 'succeeded');
    assert.equal(deps.telemetry.failed.length, 0);
    assert.equal(deps.telemetry.poisoned.length, 1);
  });
});

describe('logs and secrets of a run', () => {
  it('gives every log line of a run its runId, currency and billing period, and lets no SAS reach logs, ledger, telemetry or our files', async () => {
    const deps = makeDeps();
    deps.graph.scriptOperation(operationUrl(1), running(30), succeeded(makeManifest()));
    deps.graph.scriptOperation(operationUrl(2), running(30, 'unknownFutureValue'), failed('5000', 'No data available'));
    const started = await start(deps);
    deps.copier.expireSas(1);
    deps.copier.failNext(
      new ExportError(
        'COPY_FAILED',
        `Copy from ${makeManifest().rootDirectory}/a.json.gz?sv=1&sig=${SAS_SECRET} failed`,
        {
          retryable: true,
        },
      ),
    );

    const drained = await drain(deps, deps.queue);
    assert.equal(drained.errors.length, 1, 'the retryable copy error reached the queue');
    const failedCopy = deps.queue.copiesSent.find(
      (c) => 'blobName' in c && !deps.destination.blobs.has(`${run(deps, c.runId).path}/${c.blobName}`),
    );
    await deliverCopy(deps, JSON.stringify(failedCopy));

    const [usd, eur] = started;
    assert.equal(run(deps, usd!.runId).status, 'succeeded');
    assert.equal(run(deps, eur!.runId).status, 'noData');

    for (const s of started) {
      const lines = deps.logger.lines.filter((l) => l.fields.runId === s.runId);
      assert.ok(lines.length >= 3, `${s.currency} has log lines`);
      for (const line of lines) {
        assert.equal(line.fields.currency, s.currency, line.message);
        assert.equal(line.fields.billingPeriod, s.billingPeriod, line.message);
      }
      assert.ok(
        lines.slice(1).every((l) => l.fields.operationId !== undefined),
        'lines after the start carry the operation id',
      );
    }
    assert.ok(
      deps.logger.lines.every((l) => l.fields.runId !== undefined),
      'no line of the pipeline lacks its run',
    );
    for (const [where, text] of [
      ['logs', deps.logger.dump()],
      ['ledger', deps.ledger.dump()],
      ['telemetry', deps.telemetry.dump()],
      ['manifest.json', JSON.stringify(deps.destination.json(`${run(deps, usd!.runId).path}/manifest.json`))],
    ] as const) {
      assert.doesNotMatch(text, /sig=/, `no sig= in ${where}`);
      assert.doesNotMatch(text, new RegExp(SAS_SECRET), `no SAS signature in ${where}`);
    }
  });
});
