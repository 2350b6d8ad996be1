import { DEFAULT_FINOPS_HUB_DATASETS } from '../config';
import { datasetOf } from '../datasets';
import { stagingFolder } from './curationLayout';
import type { CuratedPart, CurationRecord } from './curationPorts';
import { type CuratingDeps, isCurationFinal } from './curationState';
import type { HubFile, HubVersion, RunRecord } from './ports';
import { runLogger } from './runStateMachine';

/**
 * The fan-in's FinOps hub drop-in (SPEC section 4.1, FINOPS_HUB_STORAGE; docs/data.md "FinOps hub drop-in"): once a
 * run's FOCUS version is current in `focus/`, its parts also go to the hub's `ingestion` container, one version per
 * hub folder, through the FinOpsHubDrop port (the adapter orders the writes and settles races between versions).
 */

/**
 * The hub folder of a run's series below the scope: the dataset's own folder name (not the configurable destination
 * prefix, so the hub path does not move when a prefix setting does) and the currency or invoice. Every series has
 * the same depth (the hub drops an earlier ingestion's rows by folder prefix). The attribute set is not part of it:
 * a `basic` and a `full` version of one currency carry the same charges, and the hub must hold only one of them.
 */
export function hubSeries(run: RunRecord): string[] {
  const dataset = datasetOf(run);
  return [dataset.defaultPrefix, dataset.layout === 'invoice' ? (run.invoiceId ?? '') : run.currency];
}

/**
 * The name a part takes in the hub (it becomes `{ingestionId}__{name}`): the part name without its run id (the
 * ingestion id is the run id already), with runs of `_` made one (the hub splits names at `__`).
 */
export function hubFileName(runId: string, partName: string): string {
  const withoutRun = partName.startsWith(`${runId}-`) ? partName.slice(runId.length + 1) : partName;
  return withoutRun.replace(/_{2,}/g, '_').replace(/^[^A-Za-z0-9]+/, '');
}

/**
 * Drops the run's FOCUS version into the hub, unless the hub is off, the run's dataset is not one FINOPS_HUB_DATASETS
 * names (the hub sums every folder: two datasets with the same charges would count them twice), or the drop is
 * already recorded on the curation row (`hubDroppedAt`: a fan-in redone after the drop writes nothing). The
 * ingestion id is the run id: the same on every redo (a redo after a crash writes the same names), and it sorts by
 * time like the versions in `focus/` do, so the adapter lets a newer version replace an older one and never the
 * reverse. The parts are read from the run's staging folder, which no other version touches. Returns the fields
 * to record (undefined: nothing to do); throws the adapter's FINOPS_HUB_* errors (FINOPS_HUB_UNAVAILABLE is retried
 * by the queue, the others fail the curation).
 */
export async function dropIntoFinOpsHub(
  deps: CuratingDeps,
  run: RunRecord,
  curation: CurationRecord,
  billingMonth: string,
  parts: readonly CuratedPart[],
): Promise<Partial<CurationRecord> | undefined> {
  const hub = deps.finOpsHub;
  if (hub === undefined || curation.hubDroppedAt !== undefined) return undefined;
  const log = runLogger(deps, run);
  // A hub port built without the hub settings (only by hand, in tests) gets the setting's default.
  const hubDatasets = deps.config.finOpsHub?.datasets ?? DEFAULT_FINOPS_HUB_DATASETS;
  const dataset = datasetOf(run).id;
  if (!hubDatasets.includes(dataset)) {
    // Nothing is recorded: the row claims no drop, and the version stays in focus/ only.
    log.info(
      `FinOps hub: not dropped; FINOPS_HUB_DATASETS (${hubDatasets.join(',')}) does not include ${dataset}, whose FOCUS version stays in focus/ only.`,
    );
    return undefined;
  }
  const focus = parts.filter((part) => part.kind === 'focus');
  if (focus.length === 0) {
    // A version without raw files has no FOCUS part; the adapter refuses an empty version (the hub would keep the
    // previous rows anyway), so the hub keeps what it has for this folder.
    log.warn('FinOps hub drop skipped: this version has no FOCUS file; the hub keeps its previous data for it.');
    return { hubDroppedAt: deps.clock.now().toISOString() };
  }
  const staging = stagingFolder(run.runId, 'focus');
  const files: HubFile[] = focus.map((part) => ({
    name: hubFileName(run.runId, part.name),
    byteCount: part.byteCount,
    open: () => deps.curation.store.openRead(`${staging}/${part.name}`),
  }));
  const version: HubVersion = {
    billingMonth,
    series: hubSeries(run),
    partnerTenantId: run.partnerTenantId ?? '',
    ingestionId: run.runId,
    files,
  };
  // Another publisher of this version may have dropped it (and emptied staging) since this one read the row: read
  // it again just before, so a drop already recorded, or a curation that ended, is left alone.
  const latest = (await deps.curation.ledger.getCuration(run.runId))?.value;
  if (latest === undefined || latest.hubDroppedAt !== undefined || isCurationFinal(latest.status)) return undefined;
  const outcome = await hub.publish(version);
  const droppedAt = deps.clock.now().toISOString();
  switch (outcome.kind) {
    case 'published':
      log.info(
        `FinOps hub: ${outcome.filesWritten} FOCUS file(s) dropped into ingestion/${outcome.folder} as ingestion ${run.runId} (${outcome.filesDeleted} older file(s) removed); manifest.json written last.`,
      );
      return { hubDroppedAt: droppedAt, hubIngestionId: run.runId, hubFolder: outcome.folder };
    case 'alreadyPublished':
      log.info(`FinOps hub: ingestion/${outcome.folder} already holds ingestion ${run.runId}; nothing written.`);
      return { hubDroppedAt: droppedAt, hubIngestionId: run.runId, hubFolder: outcome.folder };
    case 'superseded':
      log.info(
        `FinOps hub: ingestion/${outcome.folder} holds a newer version (ingestion ${outcome.newerIngestionId}); this one was not dropped.`,
      );
      return { hubDroppedAt: droppedAt, hubFolder: outcome.folder };
  }
}
