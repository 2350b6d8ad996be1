import type { Config, DatasetId } from '../config';
import { DATASETS, prefixOf } from '../datasets';
import type { CuratedKind } from '../pipeline/curationLayout';

/**
 * Which Parquet parts the `query` command's views read: for each series folder of `curated/` and `focus/`, exactly the
 * parts its manifest.json names (the current version, docs/data.md "What a reader sees while a new version replaces
 * the old one"). A part beside them (an older version not yet deleted, a newer one being copied in, a failed
 * curation's left-over) is never read, and a folder without manifest.json (a first version being published) is left
 * out. Pure: the listing and the manifests come from the caller (a destination container or a local copy).
 */

/** The view of all FOCUS rows, every dataset (union by column name). */
export const FOCUS_VIEW = 'focus_costs';

/**
 * A query that works on any curated data (printed by `npm start` and `query --help`, the first example of docs/data.md
 * "The query command"): grouped by dataset (`x_SourceType`), since usage and reconciliation restate the same charges.
 */
export const QUERY_EXAMPLE =
  'SELECT x_SourceType, BillingCurrency, x_CustomerName, sum(BilledCost) AS billed_cost FROM focus_costs GROUP BY ALL ORDER BY x_SourceType, BillingCurrency, billed_cost DESC LIMIT 20';

/** The view of a dataset's curated rows: its id in snake case (`unbilledUsage` → `unbilled_usage`). */
export function datasetView(dataset: DatasetId): string {
  return dataset.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

/** Every view name, curated datasets first, in a stable order. */
export function allViewNames(): string[] {
  return [...(Object.keys(DATASETS) as DatasetId[]).map(datasetView), FOCUS_VIEW];
}

/** One blob (or local file) of `curated/` or `focus/`. */
export interface ListedPart {
  /** Path inside the container (`curated/unbilled-usage/exportMonth=…/….parquet`). */
  path: string;
  size: number;
  /** The blob's ETag (a local copy has none). */
  etag?: string | undefined;
}

/** The current parts of one series folder of one table. */
export interface CurrentSeries {
  kind: CuratedKind;
  dataset: DatasetId;
  /** `{kind}/{prefix}/exportMonth=…/…/exportAttributeSet=…` */
  folder: string;
  /** The run whose version is current (manifest `source.runId`). */
  runId: string;
  parts: ListedPart[];
  /** Σ of the manifest's per-part row counts. */
  rowCount: number;
}

export interface CurrentData {
  series: CurrentSeries[];
  /** Series left out, and why (e.g. a manifest naming a part that is not there). */
  warnings: string[];
}

/** The manifest.json paths of a listing (one per series folder that has one). */
export function manifestPaths(listing: ListedPart[]): string[] {
  return listing.map((file) => file.path).filter((path) => /^(curated|focus)\/.+\/manifest\.json$/.test(path));
}

/** The dataset whose folder holds `folder` (`{kind}/{prefix}/exportMonth=…`), by the configured prefixes. */
function datasetOfFolder(config: Pick<Config, 'destination'>, folder: string): DatasetId | undefined {
  const rest = folder.slice(folder.indexOf('/') + 1);
  // The longest prefix first: one dataset's folder may be nested in another's.
  const prefixes = (Object.keys(DATASETS) as DatasetId[])
    .map((dataset) => [dataset, prefixOf(config, dataset)] as const)
    .sort((a, b) => b[1].length - a[1].length);
  return prefixes.find(([, prefix]) => rest.startsWith(`${prefix}/exportMonth=`))?.[0];
}

export interface ManifestFiles {
  runId: string;
  files: Array<{ name: string; rowCount: number }>;
}

/** The run and the part names a curated manifest.json names (undefined: not a curated manifest). */
export function parseManifest(value: unknown): ManifestFiles | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { source, files } = value as { source?: { runId?: unknown }; files?: unknown };
  if (typeof source?.runId !== 'string' || !Array.isArray(files)) return undefined;
  const parsed: ManifestFiles['files'] = [];
  for (const file of files as Array<{ name?: unknown; rowCount?: unknown }>) {
    if (typeof file?.name !== 'string' || file.name === '' || file.name.includes('/')) return undefined;
    parsed.push({ name: file.name, rowCount: typeof file.rowCount === 'number' ? file.rowCount : 0 });
  }
  return { runId: source.runId, files: parsed };
}

/**
 * The current parts of every series: `manifests` maps a manifest.json path to its parsed JSON (undefined: it could
 * not be read or parsed, and the series is left out with a warning).
 */
export function currentData(
  config: Pick<Config, 'destination'>,
  listing: ListedPart[],
  manifests: Map<string, unknown>,
): CurrentData {
  const byPath = new Map(listing.map((file) => [file.path, file]));
  const series: CurrentSeries[] = [];
  const warnings: string[] = [];
  for (const manifestPath of manifestPaths(listing).sort()) {
    const folder = manifestPath.slice(0, -'/manifest.json'.length);
    const kind = folder.slice(0, folder.indexOf('/')) as CuratedKind;
    const dataset = datasetOfFolder(config, folder);
    if (dataset === undefined) continue; // not a dataset folder of these settings (e.g. another DESTINATION_PREFIX)
    const manifest = parseManifest(manifests.get(manifestPath));
    if (manifest === undefined) {
      warnings.push(`${manifestPath} could not be read as a curated manifest; that series is left out.`);
      continue;
    }
    const parts: ListedPart[] = [];
    const missing: string[] = [];
    for (const file of manifest.files) {
      const part = byPath.get(`${folder}/${file.name}`);
      if (part === undefined) missing.push(file.name);
      else parts.push(part);
    }
    if (missing.length > 0) {
      // Reading the others would give a partial version, which a reader must never take for the whole.
      warnings.push(
        `${manifestPath} names ${missing.length} part(s) that are not there (${missing[0]}); that series is left out.`,
      );
      continue;
    }
    const rowCount = manifest.files.reduce((sum, file) => sum + file.rowCount, 0);
    series.push({ kind, dataset, folder, runId: manifest.runId, parts, rowCount });
  }
  return { series, warnings };
}

/** The local files of each view (only views with at least one part), by view name. */
export function viewFiles(data: CurrentData, localPath: (part: ListedPart) => string): Map<string, string[]> {
  const views = new Map<string, string[]>();
  for (const view of allViewNames()) {
    const files = data.series
      .filter((series) => (view === FOCUS_VIEW ? series.kind === 'focus' : series.kind === 'curated'))
      .filter((series) => view === FOCUS_VIEW || datasetView(series.dataset) === view)
      .flatMap((series) => series.parts.map(localPath));
    if (files.length > 0) views.set(view, files);
  }
  return views;
}

function sqlString(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/**
 * The CREATE VIEW statements: each view reads its listed files only (no glob, so nothing beside the current version),
 * by column name (a dataset's `full` and `basic` schemas differ; FOCUS rows of different datasets fill different
 * `x_` columns), without hive partitioning (the series are told apart by their own columns).
 */
export function createViewsSql(views: Map<string, string[]>): string {
  return [...views]
    .map(
      ([view, files]) =>
        `CREATE OR REPLACE VIEW ${view} AS SELECT * FROM read_parquet([${files.map(sqlString).join(', ')}], union_by_name = true, hive_partitioning = false);`,
    )
    .join('\n');
}
