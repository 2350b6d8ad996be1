import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExportError } from '../../../src/errors';
import {
  addDecimals,
  type CuratedManifest,
  curateExportFile,
  handleCurationPoison,
  superviseCurations,
} from '../../../src/pipeline/curateExport';
import { getRunDetails } from '../../../src/pipeline/listRuns';
import { parseCurateMessage } from '../../../src/pipeline/messages';
import type { RunRecord } from '../../../src/pipeline/ports';
import { type CuratingFakeDeps, drainCuration, makeCuratingDeps, succeededUsdRun } from '../../support/curationFakes';
import { makeManifest } from '../../support/fakes';

const SERIES = 'unbilled-usage/exportMonth=2024-10/exportCurrency=USD/exportAttributeSet=full';
const CURATED = `curated/${SERIES}`;
const FOCUS = `focus/${SERIES}`;

function parquet(deps: CuratingFakeDeps, folder: string): string[] {
  return deps.curation.store.paths(`${folder}/`).filter((path) => path.endsWith('.parquet'));
}

function manifest(deps: CuratingFakeDeps, folder: string): CuratedManifest {
  return deps.destination.json(`${folder}/manifest.json`) as CuratedManifest;
}

describe('curation of a succeeded run', () => {
  it('is queued after the run is succeeded, one export-curate message per raw file, and never changes the run', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const runId = await succeededUsdRun(deps);

    assert.equal(deps.telemetry.completed.length, 1, 'the run completed (and said so) before curation');
    assert.equal(deps.curation.ledger.curation(runId).status, 'pending');
    assert.deepEqual(
      deps.curation.queue.sent.map((m) => (m.kind === 'file' ? m.blobName : m.kind)),
      makeManifest().blobs.map((b) => b.name),
    );
    const before: RunRecord = deps.ledger.run(runId);
    assert.deepEqual(await drainCuration(deps), []);
    assert.deepEqual(deps.ledger.run(runId), { ...before, announced: true });
  });

  it('converts each file into staged parts and the last one publishes the version with its manifest, counts and totals', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const runId = await succeededUsdRun(deps);
    assert.deepEqual(await drainCuration(deps), []);

    const curation = deps.curation.ledger.curation(runId);
    assert.equal(curation.status, 'succeeded');
    assert.equal(curation.rowsRead, 9);
    assert.equal(curation.rowsConverted, 9);
    assert.equal(curation.rowsRejected, 0);
    assert.equal(curation.curatedPath, SERIES);
    assert.equal(curation.current, true);
    assert.equal(parquet(deps, CURATED).length, 3);
    assert.equal(parquet(deps, FOCUS).length, 3);
    assert.ok(parquet(deps, CURATED).every((path) => path.slice(CURATED.length + 1).startsWith(`${runId}-part-0000`)));
    assert.deepEqual(deps.curation.store.paths('_curation-staging/'), [], 'staging is emptied');
    const written = manifest(deps, FOCUS);
    assert.equal(written.source.runId, runId);
    assert.equal(written.source.eTag, makeManifest().eTag);
    assert.equal(written.focusVersion, '1.2');
    assert.deepEqual(written.rows, { read: 9, converted: 9, rejected: 0, rejectedReasons: {}, warnings: {} });
    assert.deepEqual(written.totals.raw, { USD: { BillingPreTaxTotal: '13.5' } });
    assert.deepEqual(
      written.files.map((f) => f.rowCount),
      [3, 3, 3],
    );
    assert.equal(deps.telemetry.curationsCompleted.length, 1);
    assert.equal(deps.telemetry.curationsCompleted[0]?.rowsConverted, 9);
  });

  it('replaces the previous version of the series: after a forced rerun the folder holds only the new parts', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const first = await succeededUsdRun(deps);
    await drainCuration(deps);
    const second = await succeededUsdRun(deps, true);
    // What a reader sees while the new version goes in: the old parts and the new ones being copied, and the
    // manifest still naming the old version only (it moves once every new part is in place).
    const seen: Array<{ manifestRun: string; parts: string[] }> = [];
    deps.curation.store.beforeCopy = (_from, to) => {
      if (to.startsWith(`${CURATED}/`)) {
        seen.push({ manifestRun: manifest(deps, CURATED).source.runId, parts: parquet(deps, CURATED) });
      }
    };
    assert.deepEqual(await drainCuration(deps), []);

    assert.ok(seen.length > 0);
    assert.ok(seen.every((s) => s.manifestRun === first));
    assert.ok(seen.some((s) => s.parts.some((p) => p.includes(second)) && s.parts.some((p) => p.includes(first))));
    for (const folder of [CURATED, FOCUS]) {
      const parts = parquet(deps, folder);
      assert.equal(parts.length, 3);
      assert.ok(
        parts.every((path) => path.includes(second)),
        parts.join(', '),
      );
      assert.equal(manifest(deps, folder).source.runId, second);
    }
  });

  it('leaves a newer current version alone when an older run publishes after it (not current, its parts removed)', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const older = await succeededUsdRun(deps);
    const olderMessages = deps.curation.queue.pending.splice(0);
    const newer = await succeededUsdRun(deps, true);
    await drainCuration(deps);
    deps.curation.queue.pending.push(...olderMessages);
    assert.deepEqual(await drainCuration(deps), []);

    assert.equal(deps.curation.ledger.curation(older).current, false);
    assert.equal(deps.curation.ledger.curation(older).status, 'succeeded');
    assert.ok(parquet(deps, CURATED).every((path) => path.includes(newer)));
    assert.equal(manifest(deps, CURATED).source.runId, newer);
  });

  it('gives the same parts when a file conversion is redone after a crash mid-upload', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const runId = await succeededUsdRun(deps);
    deps.curation.store.uploadFailures.push(new Error('process died'));
    const errors = await drainCuration(deps);
    assert.equal(errors.length, 1, 'the queue retries the message');
    assert.notEqual(deps.curation.ledger.curation(runId).status, 'succeeded');
    const staged = deps.curation.store.paths('_curation-staging/');
    // The redelivery (the queue makes the message visible again).
    const failed = deps.curation.engine.calls[0]?.sourceFileName as string;
    deps.curation.queue.pending.push(JSON.stringify({ version: 1, kind: 'file', runId, blobName: failed }));
    const partsBefore = staged.filter((path) => path.includes(failed.replace('.json.gz', '')));
    assert.deepEqual(await drainCuration(deps), []);

    assert.equal(deps.curation.ledger.curation(runId).status, 'succeeded');
    assert.equal(parquet(deps, CURATED).length, 3);
    assert.ok(partsBefore.length <= 1);
    const names = parquet(deps, CURATED).map((p) => p.slice(CURATED.length + 1));
    assert.equal(new Set(names).size, 3);
  });

  it('fails loudly with CURATION_TOTALS_MISMATCH when FOCUS totals differ from the raw rows, publishing nothing', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const runId = await succeededUsdRun(deps);
    deps.curation.engine.focusTotalOverride = '4.4';
    assert.deepEqual(await drainCuration(deps), []);

    const curation = deps.curation.ledger.curation(runId);
    assert.equal(curation.status, 'failed');
    assert.equal(curation.errorCode, 'CURATION_TOTALS_MISMATCH');
    assert.match(curation.error ?? '', /focus USD BillingPreTaxTotal: raw 4\.5, written 4\.4/);
    assert.equal(deps.telemetry.curationsFailed.length, 1);
    assert.equal(deps.telemetry.curationsFailed[0]?.errorCode, 'CURATION_TOTALS_MISMATCH');
    assert.ok(deps.logger.at('error').some((line) => line.message.includes('CURATION_TOTALS_MISMATCH')));
    assert.deepEqual(parquet(deps, CURATED), []);
    assert.equal(deps.ledger.run(runId).status, 'succeeded', 'the raw run is untouched');
  });

  it('withdraws the parts a failed publication had copied in, leaving the previous version as it was', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const first = await succeededUsdRun(deps);
    await drainCuration(deps);
    const second = await succeededUsdRun(deps, true);
    const write = deps.destination.writeJson.bind(deps.destination);
    deps.destination.writeJson = async (path, value, condition) => {
      if (path.endsWith('/manifest.json') && path.startsWith('focus/')) {
        throw new ExportError('DESTINATION_FORBIDDEN', 'Writing the manifest was refused (403).');
      }
      return write(path, value, condition);
    };
    assert.deepEqual(await drainCuration(deps), []);

    assert.equal(deps.curation.ledger.curation(second).status, 'failed');
    assert.equal(deps.curation.ledger.curation(second).errorCode, 'DESTINATION_FORBIDDEN');
    assert.equal(manifest(deps, FOCUS).source.runId, first);
    const parts = parquet(deps, FOCUS);
    assert.equal(parts.length, 3);
    assert.ok(
      parts.every((path) => path.includes(first)),
      parts.join(', '),
    );
  });

  it('fails the curation with the last error when its message reaches export-curate-poison', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const runId = await succeededUsdRun(deps);
    deps.curation.engine.failures.push(new ExportError('UNEXPECTED', 'disk full', { retryable: true }));
    const errors = await drainCuration(deps);
    assert.equal(errors.length, 1);
    const poisoned = deps.curation.queue.sent[0];
    await handleCurationPoison(poisoned, deps, runId);

    const curation = deps.curation.ledger.curation(runId);
    assert.equal(curation.status, 'failed');
    assert.equal(curation.errorCode, 'MESSAGE_POISONED');
    assert.match(curation.error ?? '', /reached export-curate-poison; last error: UNEXPECTED: disk full/);
    assert.equal(deps.telemetry.curationsFailed.length, 1);
  });

  it('shows the curation with the run in its details (GET /api/exports/runs/{runId}, runs ID)', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const runId = await succeededUsdRun(deps);
    await drainCuration(deps);
    const details = await getRunDetails(runId, deps);
    assert.equal(details.curation?.status, 'succeeded');
    assert.equal(details.curation?.rowsConverted, 9);
    assert.equal(details.curation?.curatedPath, SERIES);
    assert.ok(!('announced' in (details.curation ?? {})));
  });

  it('is not started with EXPORT_CURATION off', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD', EXPORT_CURATION: 'off' } });
    const runId = await succeededUsdRun(deps);
    assert.equal(deps.curation.ledger.curations.size, 0);
    assert.equal(deps.curation.queue.sent.length, 0);
    assert.equal(await superviseCurations(deps), undefined);
    assert.equal(deps.ledger.run(runId).status, 'succeeded');
  });
});

describe('supervision of curations', () => {
  it('starts the curation of a succeeded run whose process stopped before starting it', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const runId = await succeededUsdRun(deps);
    deps.curation.ledger.curations.clear();
    deps.curation.ledger.files.clear();
    deps.curation.queue.pending.splice(0);
    deps.clock.advanceSeconds(300);

    const report = await superviseCurations(deps);
    assert.equal(report?.started, 1);
    assert.deepEqual(await drainCuration(deps), []);
    assert.equal(deps.curation.ledger.curation(runId).status, 'succeeded');
  });

  it('resumes a curation whose messages were lost, then fails it CURATION_STALLED past EXPORT_MAX_RESUMES', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD', EXPORT_MAX_RESUMES: '1' } });
    const runId = await succeededUsdRun(deps);
    deps.curation.queue.pending.splice(0);
    deps.clock.advanceSeconds(31 * 60);
    assert.equal((await superviseCurations(deps))?.resumed, 1);
    assert.equal(deps.curation.queue.pending.length, 3, 'the three file messages sent again');
    deps.curation.queue.pending.splice(0);
    deps.clock.advanceSeconds(31 * 60);
    assert.equal((await superviseCurations(deps))?.failed, 1);

    const curation = deps.curation.ledger.curation(runId);
    assert.equal(curation.status, 'failed');
    assert.equal(curation.errorCode, 'CURATION_STALLED');
    assert.equal(deps.telemetry.curationsFailed[0]?.errorCode, 'CURATION_STALLED');
  });
});

describe('staged parts left behind', () => {
  it('are deleted an hour after their curation ended; those of a curation in flight stay', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const ended = await succeededUsdRun(deps);
    assert.deepEqual(await drainCuration(deps), []);
    assert.equal(deps.curation.ledger.curation(ended).status, 'succeeded');
    const inFlight = await succeededUsdRun(deps, true);
    // A duplicate conversion staged its part after the curation had emptied its staging, and its process was killed.
    const left = `_curation-staging/${ended}/focus/${ended}-part-00000-0.parquet`;
    const staged = `_curation-staging/${inFlight}/focus/${inFlight}-part-00000-0.parquet`;
    for (const path of [left, staged]) {
      deps.destination.put(path, { body: 'parquet', byteCount: 7, contentType: 'application/vnd.apache.parquet' });
    }

    deps.clock.advanceSeconds(50 * 60);
    assert.equal((await superviseCurations(deps))?.swept, 0, 'not yet: a duplicate conversion may still be staging');
    assert.ok(deps.destination.blobs.has(left));

    deps.clock.advanceSeconds(11 * 60);
    assert.equal((await superviseCurations(deps))?.swept, 1);
    assert.equal(deps.destination.blobs.has(left), false);
    assert.ok(deps.destination.blobs.has(staged), 'the staging of a curation in flight is left alone');
  });
});

describe('supervision of curations waiting behind others', () => {
  it("does not resume a curation while another curation's files are being converted, and resumes it once they stop", async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const waiting = await succeededUsdRun(deps);
    const busy = await succeededUsdRun(deps, true);
    // The waiting curation's messages are lost (or still deep in the queue); the busy one converts a file now and then.
    const busyMessages = deps.curation.queue.pending.filter((raw) => String(raw).includes(busy));
    deps.curation.queue.pending.splice(0);
    for (const raw of busyMessages.slice(0, 2)) {
      deps.clock.advanceSeconds(20 * 60);
      await curateExportFile(parseCurateMessage(raw), deps);
      const report = await superviseCurations(deps);
      assert.equal(report?.resumed, 0, 'conversions progress: nobody is stalled');
    }
    assert.equal(deps.curation.ledger.curation(waiting).resumes ?? 0, 0);
    assert.equal(deps.curation.queue.pending.length, 0, 'no message sent again while the queue is busy');

    deps.clock.advanceSeconds(31 * 60);
    const report = await superviseCurations(deps);
    assert.equal(report?.resumed, 2, 'both resumed once no file has been converted for the stall time');
    assert.ok(deps.curation.queue.pending.some((raw) => String(raw).includes(waiting)));
  });
});

describe('supervision of curations that cannot be waiting behind others', () => {
  it('resumes a publishing curation, or a pending one whose file messages were never sent, while others convert', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const publishing = await succeededUsdRun(deps);
    const unsent = await succeededUsdRun(deps, true);
    const busy = await succeededUsdRun(deps, true);
    const busyMessages = deps.curation.queue.pending.filter((raw) => String(raw).includes(busy));
    deps.curation.queue.pending.splice(0);
    // One is publishing (its publish message lost), one was created but its file messages never went out.
    await deps.curation.ledger.updateCuration(publishing, { status: 'publishing' });
    const row = deps.curation.ledger.curations.get(unsent)!;
    const { filesQueuedAt: _sent, ...unqueued } = row.value;
    deps.curation.ledger.curations.set(unsent, { ...row, value: unqueued });

    deps.clock.advanceSeconds(31 * 60);
    await curateExportFile(parseCurateMessage(busyMessages[0]!), deps);
    const report = await superviseCurations(deps);

    assert.equal(report?.resumed, 2, 'both resumed although another curation converts');
    assert.equal(deps.curation.ledger.curation(busy).resumes ?? 0, 0, 'the converting one is left alone');
  });

  it('resumes a converting curation that has waited four stall times behind others', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const waiting = await succeededUsdRun(deps);
    const names = Array.from({ length: 6 }, (_, i) => `part-0000${i}.json.gz`);
    const busy = await succeededUsdRun(deps, true, names);
    const busyMessages = deps.curation.queue.pending.filter((raw) => String(raw).includes(busy));
    deps.curation.queue.pending.splice(0);
    await deps.curation.ledger.updateCuration(waiting, { status: 'converting' });
    for (const raw of busyMessages.slice(0, 4)) {
      deps.clock.advanceSeconds(25 * 60);
      await curateExportFile(parseCurateMessage(raw), deps);
      await superviseCurations(deps);
    }
    assert.equal(deps.curation.ledger.curation(waiting).resumes ?? 0, 0, 'not after 100 minutes behind others');
    deps.clock.advanceSeconds(25 * 60);
    await curateExportFile(parseCurateMessage(busyMessages[4]!), deps);
    await superviseCurations(deps);
    assert.equal(deps.curation.ledger.curation(waiting).resumes, 1, 'resumed after 125 minutes (4 stall times)');
  });
});

describe('addDecimals', () => {
  it('adds decimal strings exactly, signs and scales included', () => {
    assert.equal(addDecimals('0.1', '0.2'), '0.3');
    assert.equal(addDecimals('-1.25', '1.25'), '0');
    assert.equal(
      addDecimals('123456789012345678901234.000000000001', '0.000000000001'),
      '123456789012345678901234.000000000002',
    );
    assert.equal(addDecimals('-0.5', '0.25'), '-0.25');
  });
});
