import type { Config } from '../config';
import { type DatasetRunKey, datasetOf, prefixOf } from '../datasets';

/**
 * Where curated data goes in the destination container (SPEC section 4.1, docs/data.md):
 *
 *   curated/{prefix}/exportMonth={YYYY-MM}/exportCurrency={CUR}/exportAttributeSet={set}/{runId}-{file}-{i}.parquet
 *   curated/{prefix}/exportMonth={YYYY-MM}/exportInvoice={id}/exportAttributeSet={set}/…          (billed datasets)
 *   curated/{prefix}/…/manifest.json        the current version of the series, written once its parts are in place
 *   focus/{prefix}/…                        the same shape, FOCUS rows
 *   _curation-staging/{runId}/{curated|focus}/{runId}-{file}-{i}.parquet   parts of a version not yet current
 *
 * One series folder holds one version once a curation has completed. The folder keys start with `export` so that no
 * key equals, ignoring case, a column of any curated or FOCUS table (the raw layout's `currency=` equals
 * reconciliation's `Currency`; a unit test checks every key against every column). Staging is outside `curated/` and
 * `focus/`, so no glob over them sees a version that is not yet current.
 */

/** Partition keys of the curated and FOCUS layouts. */
export const CURATED_PARTITION_KEYS = ['exportMonth', 'exportCurrency', 'exportInvoice', 'exportAttributeSet'] as const;

/** Top folders of the two tables. */
export type CuratedKind = 'curated' | 'focus';
export const CURATED_KINDS: readonly CuratedKind[] = ['curated', 'focus'];

/** Folder of parts not yet current. */
export const STAGING_ROOT = '_curation-staging';

/** The series folder under `kind/` (without the kind), e.g. `unbilled-usage/exportMonth=2026-11/exportCurrency=USD/exportAttributeSet=full`. */
export function curatedSeries(config: Pick<Config, 'destination'>, run: DatasetRunKey, billingMonth: string): string {
  const description = datasetOf(run);
  const scope =
    description.layout === 'invoice' ? `exportInvoice=${run.invoiceId ?? ''}` : `exportCurrency=${run.currency}`;
  return `${prefixOf(config, description.id)}/exportMonth=${billingMonth}/${scope}/exportAttributeSet=${run.attributeSet}`;
}

/** `{kind}/{series}`. */
export function curatedFolder(kind: CuratedKind, series: string): string {
  return `${kind}/${series}`;
}

/** The staging folder of one run's parts of one kind. */
export function stagingFolder(runId: string, kind: CuratedKind): string {
  return `${STAGING_ROOT}/${runId}/${kind}`;
}

/**
 * The base name of a raw file's parts: the run id, then the blob name without `.json.gz`, anything but letters,
 * digits, `.`, `_` and `-` made `_`. The same on every conversion of the file (a redo overwrites, never adds).
 */
export function partBaseName(runId: string, blobName: string): string {
  const stem = blobName.replace(/\.json(\.gz)?$/i, '').replace(/[^A-Za-z0-9._-]/g, '_');
  return `${runId}-${stem}`;
}
