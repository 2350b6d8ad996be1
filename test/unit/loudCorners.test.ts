/**
 * Regression tests of issue 14 ("complete or loud in every corner"), over the in-memory fakes: an unreadable ledger
 * row among good ones (5), a destination hiccup during the timer (6), a poison alert for a run that succeeded (7),
 * a losing delivery writing onto an ended run (8), a ledger row deleted while its run was in flight (10).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExportError } from '../../src/errors';
import { copyExportBlob } from '../../src/pipeline/copyExportBlob';
import { handlePoisonMessage } from '../../src/pipeline/handlePoisonMessage';
import { listRuns } from '../../src/pipeline/listRuns';
import { parseCopyMessage, parseStatusMessage } from '../../src/pipeline/messages';
import { pollExportStatus } from '../../src/pipeline/pollExportStatus';
import type { CopyMessage, RunRecord } from '../../src/pipeline/ports';
import { startExports } from '../../src/pipeline/startExports';
import { superviseRuns } from '../../src/pipeline/superviseRuns';
import { type FakeDeps, makeDeps, makeManifest, running, succeeded } from '../support/fakes';

async function start(deps: FakeDeps, currencies: string[]): Promise<string[]> {
  const started = await startExports({ trigger: 'manual', currencies, billingPeriods: ['current'] }, deps);
  assert.deepEqual(
    started.map((run) => run.error),
    currencies.map(() => undefined),
  );
  return started.map((run) => run.runId);
}

function runOf(deps: FakeDeps, runId: string): RunRecord {
  return deps.ledger.run(runId);
}

/** Delivers the pending status messages once each (the clock moves by their delays). */
async function deliverStatus(deps: FakeDeps): Promise<void> {
  for (const next of deps.queue.takeStatus()) {
    deps.clock.advanceSeconds(next.delaySeconds);
    await pollExportStatus(parseStatusMessage(next.raw), deps);
  }
}

const destinationBusy = () =>
  new ExportError('DESTINATION_UNAVAILABLE', 'Creating the destination container failed (503 ServerBusy).', {
    retryable: true,
    status: 503,
  });

describe('an unreadable ledger row among good ones (issue 14, defect 5)', () => {
  it('does not stop the sweep: the good runs are resumed and failed, the row is counted, logged and sent as ExportRunUnreadable', async () => {
    const deps = makeDeps({
      env: { EXPORT_CURRENCIES: 'USD,EUR,GBP', EXPORT_STALL_MINUTES: '30', EXPORT_MAX_RESUMES: '2' },
    });
    const [usd, eur, gbp] = await start(deps, ['USD', 'EUR', 'GBP']);
    assert.ok(usd !== undefined && eur !== undefined && gbp !== undefined);
    deps.queue.takeStatus(); // every first status check is lost: each run waits for the supervisor
    await deps.ledger.updateRun(eur, { resumes: 2 }); // EUR was resumed as often as allowed: it fails now
    deps.ledger.unreadableFields.set(gbp, 'dataset'); // GBP's row holds a dataset a newer version wrote
    deps.clock.advanceSeconds(31 * 60);

    const report = await superviseRuns(deps);

    assert.deepEqual(
      { checked: report.checked, resumed: report.resumed, ended: report.ended, errors: report.errors },
      { checked: 2, resumed: 1, ended: 1, errors: 1 },
    );
    assert.equal(runOf(deps, usd).resumes, 1, 'USD was resumed');
    assert.equal(deps.queue.pendingStatus.length, 1, 'its status check was sent again');
    assert.equal(runOf(deps, eur).status, 'failed');
    assert.equal(runOf(deps, eur).errorCode, 'RUN_STALLED');
    assert.deepEqual(
      deps.telemetry.unreadable.map((row) => [row.runId, row.field]),
      [[gbp, 'dataset']],
    );
    const errors = deps.logger.at('error').filter((line) => line.fields.runId === gbp);
    assert.equal(errors.length, 1);
    assert.match(errors[0]?.message ?? '', /RUN_UNREADABLE: .*field dataset/);
  });

  it('leaves the row out of the run history with an error line, and lists the others', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD,EUR' } });
    const [usd, eur] = await start(deps, ['USD', 'EUR']);
    assert.ok(usd !== undefined && eur !== undefined);
    deps.ledger.unreadableFields.set(eur, 'dataset');

    const runs = await listRuns({ limit: 50 }, deps);

    assert.deepEqual(
      runs.map((run) => run.runId),
      [usd],
    );
    assert.match(deps.logger.at('error')[0]?.message ?? '', /RUN_UNREADABLE: .*field dataset/);
  });
});

describe('a destination 503 while the timer starts its targets (issue 14, defect 6)', () => {
  it('does not cancel the day: the container is tried again and every target starts', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD,EUR,GBP' } });
    const ensure = deps.destination.ensureContainer.bind(deps.destination);
    let calls = 0;
    deps.destination.ensureContainer = async () => {
      calls += 1;
      if (calls === 1) throw destinationBusy();
      return ensure();
    };

    const started = await startExports({ trigger: 'schedule' }, deps);

    assert.deepEqual(
      started.map((run) => `${run.currency} ${run.status} ${run.error ?? ''}`.trim()),
      ['USD waiting', 'EUR waiting', 'GBP waiting'],
    );
    assert.equal(deps.graph.startCalls.length, 3);
  });

  it('tries the container again for each target while it keeps failing, and reports each target', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD,EUR' } });
    let calls = 0;
    deps.destination.ensureContainer = async () => {
      calls += 1;
      throw destinationBusy();
    };

    const started = await startExports({ trigger: 'schedule' }, deps);

    assert.deepEqual(
      started.map((run) => run.error !== undefined),
      [true, true],
    );
    assert.ok(calls >= 4, `each target tried the container itself, with brief retries (${calls} calls)`);
    assert.equal(deps.graph.startCalls.length, 0);
  });
});

describe('a poisoned message racing its run (issue 14, defect 7)', () => {
  it('carries the final status of a run that succeeded meanwhile, so the poison alert skips it', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const [runId] = await start(deps, ['USD']);
    assert.ok(runId !== undefined);
    deps.graph.scriptOperation('*', succeeded(makeManifest()));
    await deliverStatus(deps);
    const copies = deps.queue.takeCopies();
    // The poison handler reads the run while it is copying; the copies then complete it before its write.
    const getRun = deps.ledger.getRun.bind(deps.ledger);
    const stale = await getRun(runId);
    let served = false;
    deps.ledger.getRun = async (id) => {
      if (!served && id === runId) {
        served = true;
        for (const raw of copies) await copyExportBlob(parseCopyMessage(raw), deps);
        return stale;
      }
      return getRun(id);
    };

    await handlePoisonMessage('export-copy-poison', copies[0], deps);

    assert.equal(runOf(deps, runId).status, 'succeeded');
    assert.deepEqual(
      deps.telemetry.poisoned.map((event) => [event.runId, event.runStatus, event.endedRun, event.dataset]),
      [[runId, 'succeeded', false, 'unbilledUsage']],
    );
  });

  it('carries the status failed and says it ended the run when the poisoning failed it, with its dataset and invoice', async () => {
    const deps = makeDeps();
    const now = deps.clock.now().toISOString();
    const runId = '20241008T060000000Z-0000b111';
    await deps.ledger.createRun({
      runId,
      trigger: 'schedule',
      currency: 'USD',
      billingPeriod: 'last',
      attributeSet: 'full',
      dataset: 'billedUsage',
      invoiceId: 'G000000001',
      force: false,
      status: 'waiting',
      startedAt: now,
      updatedAt: now,
      polls: 3,
      blobsCopied: 0,
      byteCount: 0,
    });

    await handlePoisonMessage('export-status-poison', JSON.stringify({ version: 1, kind: 'poll', runId }), deps);

    assert.equal(runOf(deps, runId).status, 'failed');
    assert.equal(runOf(deps, runId).errorCode, 'MESSAGE_POISONED');
    assert.deepEqual(deps.telemetry.poisoned, [
      {
        queue: 'export-status-poison',
        runId,
        reason: 'a status check failed repeatedly and reached export-status-poison',
        runStatus: 'failed',
        endedRun: true,
        dataset: 'billedUsage',
        invoiceId: 'G000000001',
      },
    ]);
  });
});

describe('a losing delivery of an ended run (issue 14, defect 8)', () => {
  it('does not write lastError or updatedAt onto the run another delivery completed', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const [runId] = await start(deps, ['USD']);
    assert.ok(runId !== undefined);
    deps.graph.scriptOperation('*', succeeded(makeManifest({ blobNames: ['a.json.gz'] })));
    await deliverStatus(deps);
    const [raw] = deps.queue.takeCopies();
    assert.ok(raw !== undefined);
    // Two deliveries of the one copy message: the first reads the run, then loses to the second, which completes
    // the run, and meets a transient error.
    const copy = deps.copier.copy.bind(deps.copier);
    let first = true;
    deps.copier.copy = async (input) => {
      if (!first) return copy(input);
      first = false;
      await copyExportBlob(parseCopyMessage(raw), deps);
      deps.clock.advanceSeconds(5);
      throw destinationBusy();
    };
    const message: CopyMessage = parseCopyMessage(raw);

    await assert.rejects(copyExportBlob(message, deps), /503/);

    const run = runOf(deps, runId);
    assert.equal(run.status, 'succeeded');
    assert.equal(run.lastError, undefined, 'no lastError on the succeeded run');
    assert.equal(run.updatedAt, run.completedAt, 'updatedAt is the completion time');
    assert.equal(deps.telemetry.completed.length, 1);
  });
});

describe('a ledger row deleted while its run was in flight (issue 14, defect 10)', () => {
  it('makes its next status check an error and an ExportRunMissing event, not a warning', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const [runId] = await start(deps, ['USD']);
    assert.ok(runId !== undefined);
    deps.ledger.runs.delete(runId); // deleted by hand mid-run

    await deliverStatus(deps);

    assert.deepEqual(deps.telemetry.missing, [{ runId, queue: 'export-status', step: 'A status check' }]);
    const errors = deps.logger.at('error');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.fields.runId, runId);
    assert.match(errors[0]?.message ?? '', /RUN_NOT_FOUND: .*not in the run ledger/);
    assert.deepEqual(deps.queue.pendingStatus, [], 'the message is dropped');
  });

  it('makes a copy of a run whose row is gone an ExportRunMissing event too', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const [runId] = await start(deps, ['USD']);
    assert.ok(runId !== undefined);
    deps.graph.scriptOperation('*', succeeded(makeManifest({ blobNames: ['a.json.gz'] })));
    await deliverStatus(deps);
    deps.ledger.runs.delete(runId);

    for (const raw of deps.queue.takeCopies()) await copyExportBlob(parseCopyMessage(raw), deps);

    assert.deepEqual(deps.telemetry.missing, [{ runId, queue: 'export-copy', step: 'The copy of a.json.gz' }]);
    assert.equal(deps.logger.at('error').length, 1);
  });
});

describe('a ledger row deleted in the middle of a step (issue 14, defect 10)', () => {
  it('is an ExportRunMissing event and an error too, not a silent end of the step', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const [runId] = await start(deps, ['USD']);
    assert.ok(runId !== undefined);
    deps.graph.scriptOperation('*', running(60));
    // The status check reads the run; the row is deleted before its conditional write.
    deps.ledger.beforeConditionalUpdate = async () => {
      deps.ledger.runs.delete(runId);
    };

    await deliverStatus(deps);

    assert.deepEqual(deps.telemetry.missing, [{ runId, queue: '', step: 'A step of the run (waiting)' }]);
    assert.match(deps.logger.at('error')[0]?.message ?? '', /RUN_NOT_FOUND: A step of the run \(waiting\) names run/);
  });
});
