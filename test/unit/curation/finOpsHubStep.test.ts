import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExportError } from '../../../src/errors';
import { type CuratedManifest, superviseCurations } from '../../../src/pipeline/curateExport';
import { dropIntoFinOpsHub, hubFileName, hubSeries } from '../../../src/pipeline/finOpsHubStep';
import type { RunRecord } from '../../../src/pipeline/ports';
import { startExports } from '../../../src/pipeline/startExports';
import { type CuratingFakeDeps, drainCuration, makeCuratingDeps, succeededUsdRun } from '../../support/curationFakes';
import { drain, InMemoryFinOpsHub, makeManifest, operationUrl, succeeded } from '../../support/fakes';

const TENANT = makeManifest().partnerTenantId;
const HUB_FOLDER = `Costs/2024/10/csp/${TENANT}/unbilled-usage/USD/`;
const FOCUS = 'focus/unbilled-usage/exportMonth=2024-10/exportCurrency=USD/exportAttributeSet=full';

type HubDeps = CuratingFakeDeps & { finOpsHub: InMemoryFinOpsHub };

function makeHubDeps(): HubDeps {
  return Object.assign(makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } }), {
    finOpsHub: new InMemoryFinOpsHub(),
  });
}

function focusParts(deps: HubDeps): string[] {
  const manifest = deps.destination.json(`${FOCUS}/manifest.json`) as CuratedManifest;
  return manifest.files.map((file) => file.name);
}

describe('the FinOps hub drop-in of the curation fan-in', () => {
  it('drops the current FOCUS version into the hub with the run id as ingestion id, and records it on the curation row and in ExportCurationCompleted', async () => {
    const deps = makeHubDeps();
    const runId = await succeededUsdRun(deps);
    assert.deepEqual(await drainCuration(deps), []);

    assert.equal(deps.finOpsHub.publishes.length, 1);
    const version = deps.finOpsHub.publishes[0];
    assert.equal(version?.ingestionId, runId);
    assert.equal(version?.billingMonth, '2024-10');
    assert.deepEqual(version?.series, ['unbilled-usage', 'USD']);
    assert.equal(version?.partnerTenantId, TENANT);
    const folder = deps.finOpsHub.folders.get(HUB_FOLDER);
    assert.equal(folder?.ingestionId, runId);
    const parts = focusParts(deps);
    assert.equal(parts.length, 3);
    assert.deepEqual(
      [...(folder?.files.keys() ?? [])].sort(),
      parts.map((name) => `${runId}__${name.slice(runId.length + 1)}`),
    );
    for (const name of parts) {
      const body: string | undefined = folder?.files.get(`${runId}__${name.slice(runId.length + 1)}`)?.toString('utf8');
      assert.equal(body, deps.destination.blobs.get(`${FOCUS}/${name}`)?.body, `${name}: the FOCUS part itself`);
    }

    const curation = deps.curation.ledger.curation(runId);
    assert.equal(curation.status, 'succeeded');
    assert.equal(curation.hubIngestionId, runId);
    assert.equal(curation.hubFolder, HUB_FOLDER);
    assert.equal(curation.hubDroppedAt, deps.clock.now().toISOString());
    assert.equal(deps.telemetry.curationsCompleted[0]?.hubIngestionId, runId);
  });

  it('drops nothing and records nothing without a hub (FINOPS_HUB_STORAGE unset)', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const started = await startExports({ trigger: 'manual', currencies: ['USD'], billingPeriods: ['current'] }, deps);
    deps.graph.scriptOperation(operationUrl(1), succeeded(makeManifest()));
    await drain(deps, deps.queue);
    assert.deepEqual(await drainCuration(deps), []);
    const curation = deps.curation.ledger.curation(started[0]?.runId as string);
    assert.equal(curation.status, 'succeeded');
    assert.equal(curation.hubDroppedAt, undefined);
    assert.equal(deps.telemetry.curationsCompleted[0]?.hubIngestionId, undefined);
  });

  /** Succeeded runs of unbilled usage and unbilled reconciliation (USD, current), their curations drained. */
  async function usageAndReconciliation(deps: HubDeps): Promise<{ usage: string; reconciliation: string }> {
    const started = await startExports(
      {
        trigger: 'manual',
        datasets: ['unbilledUsage', 'unbilledReconciliation'],
        currencies: ['USD'],
        billingPeriods: ['current'],
      },
      deps,
    );
    for (let n = 1; n <= started.length; n++) deps.graph.scriptOperation(operationUrl(n), succeeded(makeManifest()));
    assert.deepEqual((await drain(deps, deps.queue)).errors, []);
    assert.deepEqual(await drainCuration(deps), []);
    const runOf = (dataset: string) => started.find((s) => s.dataset === dataset)?.runId as string;
    return { usage: runOf('unbilledUsage'), reconciliation: runOf('unbilledReconciliation') };
  }

  /** Asserts the run's curation succeeded, claims no drop, and one info line says the setting leaves it out. */
  function assertNotDropped(deps: HubDeps, runId: string, dataset: string): void {
    const curation = deps.curation.ledger.curation(runId);
    assert.equal(curation.status, 'succeeded');
    assert.equal(curation.hubDroppedAt, undefined);
    assert.equal(curation.hubIngestionId, undefined);
    assert.equal(curation.hubFolder, undefined);
    assert.ok(deps.finOpsHub.publishes.every((v) => v.ingestionId !== runId));
    const completed = deps.telemetry.curationsCompleted.find((c) => c.runId === runId);
    assert.ok(completed !== undefined, 'ExportCurationCompleted is sent');
    assert.equal(completed.hubIngestionId, undefined);
    const lines = deps.logger.lines.filter(
      (line) => line.fields.runId === runId && /FINOPS_HUB_DATASETS/.test(line.message),
    );
    assert.equal(lines.length, 1, 'one line says why');
    assert.equal(lines[0]?.level, 'info');
    assert.match(lines[0]?.message ?? '', new RegExp(`does not include ${dataset}`));
  }

  it('drops only unbilled usage by default: a reconciliation version is curated but not dropped, and nothing claims a drop', async () => {
    const deps = makeHubDeps();
    const { usage, reconciliation } = await usageAndReconciliation(deps);

    assert.deepEqual(
      deps.finOpsHub.publishes.map((v) => v.ingestionId),
      [usage],
    );
    assert.deepEqual([...deps.finOpsHub.folders.keys()], [HUB_FOLDER]);
    assert.equal(deps.curation.ledger.curation(usage).hubIngestionId, usage);
    assertNotDropped(deps, reconciliation, 'unbilledReconciliation');
  });

  it('drops the datasets FINOPS_HUB_DATASETS names and no other', async () => {
    const deps = Object.assign(
      makeCuratingDeps({
        env: {
          EXPORT_CURRENCIES: 'USD',
          FINOPS_HUB_STORAGE: 'UseDevelopmentStorage=true',
          FINOPS_HUB_DATASETS: 'unbilledReconciliation',
        },
      }),
      { finOpsHub: new InMemoryFinOpsHub() },
    );
    const { usage, reconciliation } = await usageAndReconciliation(deps);

    assert.deepEqual(
      deps.finOpsHub.publishes.map((v) => v.series),
      [['unbilled-reconciliation', 'USD']],
    );
    assert.equal(deps.curation.ledger.curation(reconciliation).hubIngestionId, reconciliation);
    assertNotDropped(deps, usage, 'unbilledUsage');
  });

  it('a forced rerun replaces the hub folder with its own ingestion id', async () => {
    const deps = makeHubDeps();
    const first = await succeededUsdRun(deps);
    await drainCuration(deps);
    const second = await succeededUsdRun(deps, true);
    assert.deepEqual(await drainCuration(deps), []);

    assert.equal(deps.finOpsHub.publishes.length, 2);
    const folder = deps.finOpsHub.folders.get(HUB_FOLDER);
    assert.equal(folder?.ingestionId, second);
    assert.ok([...(folder?.files.keys() ?? [])].every((name) => name.startsWith(`${second}__`)));
    assert.ok(second > first);
  });

  it('does not drop an older version that publishes after a newer one (not current in focus/)', async () => {
    const deps = makeHubDeps();
    await succeededUsdRun(deps);
    const olderMessages = deps.curation.queue.pending.splice(0);
    const newer = await succeededUsdRun(deps, true);
    await drainCuration(deps);
    deps.curation.queue.pending.push(...olderMessages);
    assert.deepEqual(await drainCuration(deps), []);

    assert.deepEqual(
      deps.finOpsHub.publishes.map((v) => v.ingestionId),
      [newer],
    );
    assert.equal(deps.finOpsHub.folders.get(HUB_FOLDER)?.ingestionId, newer);
  });

  it('a fan-in redone after the hub drop was recorded does not drop again', async () => {
    const deps = makeHubDeps();
    const runId = await succeededUsdRun(deps);
    // The process stops right after recording the drop: the curation is still publishing.
    const update = deps.curation.ledger.updateCuration.bind(deps.curation.ledger);
    let stopped = false;
    deps.curation.ledger.updateCuration = async (id, fields, etag) => {
      const written = await update(id, fields, etag);
      if (fields.hubDroppedAt !== undefined && !stopped) {
        stopped = true;
        throw new Error('the process died');
      }
      return written;
    };
    // A dead process sends nothing more.
    const send = deps.curation.queue.sendCurate.bind(deps.curation.queue);
    deps.curation.queue.sendCurate = async (messages) => {
      if (stopped) throw new Error('the process died');
      return send(messages);
    };
    const errors = await drainCuration(deps);
    assert.equal(errors.length, 1);
    assert.equal(deps.curation.ledger.curation(runId).status, 'publishing');
    deps.curation.queue.sendCurate = send;
    assert.equal(deps.curation.ledger.curation(runId).hubIngestionId, runId);

    await superviseCurations(deps, { runIds: [runId], ownerGone: true });
    assert.deepEqual(await drainCuration(deps), []);
    assert.equal(deps.curation.ledger.curation(runId).status, 'succeeded');
    assert.equal(deps.finOpsHub.publishes.length, 1, 'the hub was not written again');
    assert.equal(deps.telemetry.curationsCompleted[0]?.hubIngestionId, runId);
  });

  it('a second publisher that read the curation row before the first one recorded its drop does not drop again', async () => {
    const deps = makeHubDeps();
    const runId = await succeededUsdRun(deps);
    assert.deepEqual(await drainCuration(deps), []);
    assert.equal(deps.finOpsHub.publishes.length, 1);
    // The row as a slower publisher of the same version read it when it began: no drop recorded, still publishing.
    const recorded = deps.curation.ledger.curation(runId);
    const stale = { ...recorded, status: 'publishing' as const, hubDroppedAt: undefined };
    const run = (await deps.ledger.getRun(runId))?.value as RunRecord;
    const manifest = deps.destination.json(`${FOCUS}/manifest.json`) as CuratedManifest;
    const parts = manifest.files.map((file) => ({ kind: 'focus' as const, ...file }));
    const fields = await dropIntoFinOpsHub(deps, run, stale, run.billingMonth as string, parts);
    assert.equal(fields, undefined, 'nothing to record');
    assert.equal(deps.finOpsHub.publishes.length, 1, 'the hub was not written again (its staging copies are gone)');
  });

  it('a transient hub failure is retried at once by a publish message: the redone fan-in drops the same version and ends the curation', async () => {
    const deps = makeHubDeps();
    const runId = await succeededUsdRun(deps);
    deps.finOpsHub.failNext = new ExportError('FINOPS_HUB_UNAVAILABLE', 'FinOps hub drop: 503', { retryable: true });
    const errors = await drainCuration(deps);
    assert.equal(errors.length, 1, 'the failed message is retried by the queue');
    assert.deepEqual(
      deps.curation.queue.sent.slice(-1).map((m) => m.kind),
      ['publish'],
    );

    const curation = deps.curation.ledger.curation(runId);
    assert.equal(curation.status, 'succeeded', 'without waiting for the supervisor');
    assert.match(curation.lastError ?? '', /^FINOPS_HUB_UNAVAILABLE/);
    assert.equal(deps.finOpsHub.folders.get(HUB_FOLDER)?.ingestionId, runId);
    assert.deepEqual(
      deps.finOpsHub.publishes.map((v) => v.ingestionId),
      [runId, runId],
    );
  });

  it('a hub that refuses the identity fails the curation FINOPS_HUB_FORBIDDEN; the FOCUS version stays current and the run succeeded', async () => {
    const deps = makeHubDeps();
    const runId = await succeededUsdRun(deps);
    deps.finOpsHub.failNext = new ExportError('FINOPS_HUB_FORBIDDEN', 'FinOps hub drop: refused (403).', {
      status: 403,
    });
    assert.deepEqual(await drainCuration(deps), []);

    const curation = deps.curation.ledger.curation(runId);
    assert.equal(curation.status, 'failed');
    assert.equal(curation.errorCode, 'FINOPS_HUB_FORBIDDEN');
    assert.equal(deps.telemetry.curationsFailed[0]?.errorCode, 'FINOPS_HUB_FORBIDDEN');
    assert.equal((deps.destination.json(`${FOCUS}/manifest.json`) as CuratedManifest).source.runId, runId);
    assert.equal(focusParts(deps).length, 3);
    assert.ok(focusParts(deps).every((name) => deps.destination.blobs.has(`${FOCUS}/${name}`)));
    assert.equal(deps.ledger.run(runId).status, 'succeeded', 'the raw run is untouched');
  });
});

describe('hub names', () => {
  const run = (fields: Partial<RunRecord>): RunRecord =>
    ({ runId: '20241008T060000000Z-00000001', currency: 'USD', attributeSet: 'full', ...fields }) as RunRecord;

  it('puts every series two folders deep: the dataset folder, then the currency or the invoice', () => {
    assert.deepEqual(hubSeries(run({})), ['unbilled-usage', 'USD']);
    assert.deepEqual(hubSeries(run({ dataset: 'unbilledReconciliation', currency: 'EUR' })), [
      'unbilled-reconciliation',
      'EUR',
    ]);
    assert.deepEqual(hubSeries(run({ dataset: 'billedUsage', invoiceId: 'G012345678' })), [
      'billed-usage',
      'G012345678',
    ]);
    assert.deepEqual(hubSeries(run({ attributeSet: 'basic' })), hubSeries(run({})), 'one hub folder per currency');
  });

  it('names a part without its run id and without "__" (the hub splits names there)', () => {
    const runId = '20241008T060000000Z-00000001';
    assert.equal(hubFileName(runId, `${runId}-part-00000-abc.c000-0.parquet`), 'part-00000-abc.c000-0.parquet');
    assert.equal(hubFileName(runId, `${runId}-dir__part_1-0.parquet`), 'dir_part_1-0.parquet');
  });
});
