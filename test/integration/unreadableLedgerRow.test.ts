/**
 * One ledger row this version cannot read among good ones (issue 14, defect 5), on real Azurite: rows written with
 * a dataset from a newer version and without a required field, next to runs the supervisor must still look after.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { createTableClient } from '../../src/adapters/storage/clients';
import { TableRunLedger } from '../../src/adapters/storage/tableRunLedger';
import type { StorageConnection } from '../../src/config';
import { listRuns } from '../../src/pipeline/listRuns';
import type { RunRecord, UnreadableRun } from '../../src/pipeline/ports';
import { superviseRuns } from '../../src/pipeline/superviseRuns';
import { uniqueName, useAzurite } from '../support/azurite';
import { makeDeps } from '../support/fakes';

const azurite = useAzurite();

function hostConnection(): StorageConnection {
  return { kind: 'connectionString', connectionString: azurite().connectionString('devstoreaccount1') };
}

function runIdAt(time: Date): string {
  return `${time.toISOString().replace(/[-:]/g, '').replace('.', '')}-${randomBytes(4).toString('hex')}`;
}

function run(startedAt: Date, fields: Partial<RunRecord> = {}): RunRecord {
  return {
    runId: runIdAt(startedAt),
    currency: 'USD',
    billingPeriod: 'current',
    attributeSet: 'full',
    trigger: 'schedule',
    status: 'starting',
    force: false,
    startedAt: startedAt.toISOString(),
    updatedAt: startedAt.toISOString(),
    polls: 0,
    blobsCopied: 0,
    byteCount: 0,
    startAttempts: 0,
    ...fields,
  };
}

/** Writes a run row as another version (or a hand edit) would: straight to the table, past the ledger's checks. */
async function writeRawRun(table: string, runId: string, fields: Record<string, string | number | boolean>) {
  const client = createTableClient(hostConnection(), table);
  await client.createEntity({ partitionKey: 'run', rowKey: runId, ...fields });
}

function tables() {
  return { runs: uniqueName('runs'), blobs: uniqueName('blobs'), locks: uniqueName('locks') };
}

describe('a ledger row this version cannot read, among good ones (issue 14, defect 5)', () => {
  it('is left out of a listing and handed over with its row key and field; without a taker the listing still fails', async () => {
    const names = tables();
    const ledger = new TableRunLedger(hostConnection(), { tableNames: names });
    const now = new Date();
    const good = run(new Date(now.getTime() - 3000), { status: 'succeeded' });
    await ledger.createRun(good);
    const newer = runIdAt(new Date(now.getTime() - 2000));
    const handEdited = runIdAt(new Date(now.getTime() - 1000));
    const { runId: _a, ...fields } = run(now, { status: 'waiting' });
    await writeRawRun(names.runs, newer, { ...fields, dataset: 'billedUsageNextGen' });
    const { currency: _c, runId: _b, ...withoutCurrency } = run(now, { status: 'waiting' });
    await writeRawRun(names.runs, handEdited, withoutCurrency);

    const skipped: UnreadableRun[] = [];
    const listed = await ledger.listRuns({}, (row) => skipped.push(row));

    assert.deepEqual(
      listed.map((r) => r.runId),
      [good.runId],
    );
    assert.deepEqual(
      skipped.map((row) => [row.runId, row.field]),
      [
        [newer, 'dataset'],
        [handEdited, 'currency'],
      ],
    );
    assert.match(skipped[0]?.problem ?? '', new RegExp(`row ${names.runs}/run/${newer}: field dataset is not one of`));
    assert.doesNotMatch(skipped[0]?.problem ?? '', /billedUsageNextGen/, 'the stored value is not echoed');
    await assert.rejects(ledger.listRuns({}), /field dataset is not one of/);
  });

  it('does not stop the supervisor: the good runs are resumed and failed, the row is reported', async () => {
    const names = tables();
    const ledger = new TableRunLedger(hostConnection(), { tableNames: names });
    const now = new Date();
    const deps = { ...makeDeps({ start: now, env: { EXPORT_STALL_MINUTES: '30' } }), ledger };
    const overdue = run(new Date(now.getTime() - 40 * 60_000), { currency: 'EUR' });
    const tooOld = run(new Date(now.getTime() - 2 * 86400_000), {
      status: 'waiting',
      updatedAt: new Date(now.getTime() - 60_000).toISOString(),
      nextCheckAt: new Date(now.getTime() + 60_000).toISOString(),
    });
    for (const r of [overdue, tooOld]) await ledger.createRun(r);
    const newer = runIdAt(new Date(now.getTime() - 50 * 60_000));
    const { runId: _r, ...fields } = run(new Date(now.getTime() - 50 * 60_000), { currency: 'GBP' });
    await writeRawRun(names.runs, newer, { ...fields, dataset: 'billedUsageNextGen' });

    const report = await superviseRuns(deps);

    assert.deepEqual(
      { checked: report.checked, resumed: report.resumed, ended: report.ended, errors: report.errors },
      { checked: 2, resumed: 1, ended: 1, errors: 1 },
    );
    assert.equal((await ledger.getRun(overdue.runId))?.value.resumes, 1);
    assert.deepEqual(
      deps.queue.statusSent.map((sent) => [sent.message.kind, sent.message.runId]),
      [['start', overdue.runId]],
    );
    const failed = (await ledger.getRun(tooOld.runId))?.value;
    assert.equal(failed?.status, 'failed');
    assert.equal(failed?.errorCode, 'RUN_STALLED');
    assert.deepEqual(
      deps.telemetry.unreadable.map((row) => [row.runId, row.field]),
      [[newer, 'dataset']],
    );
    assert.ok(
      deps.logger.at('error').some((line) => line.fields.runId === newer && /RUN_UNREADABLE/.test(line.message)),
    );
    // The run history (GET /api/exports/runs, the command line's `runs`) lists the others.
    const history = await listRuns({ limit: 50 }, deps);
    assert.deepEqual(history.map((r) => r.runId).sort(), [overdue.runId, tooOld.runId].sort());
  });
});
