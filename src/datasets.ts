import type { AttributeSet, BillingPeriod, Config, DatasetId } from './config';
import { DATASET_IDS } from './config';
import { billingMonthFor, type LayoutKey, latestPath, runFolder, seriesFolder, startLockKey } from './pipeline/layout';

/**
 * The partner billing datasets (issue 10, reference/partner-billing-api.md sections 1 and 2). One export
 * lifecycle serves them all; a dataset only decides the Graph request, the destination layout and the
 * series a run belongs to.
 */

/** `daily`: unbilled data exported every day per currency and period; `invoice`: billed data of one invoice. */
export type DatasetCadence = 'daily' | 'invoice';

/** What a run of a dataset is about: enough to build its request, its lock and its folder. */
export interface DatasetRunKey {
  dataset?: DatasetId | undefined;
  currency: string;
  billingPeriod: BillingPeriod;
  attributeSet: AttributeSet;
  invoiceId?: string | undefined;
}

/** A partner billing dataset. */
export interface DatasetDescription {
  id: DatasetId;
  /** Human wording for logs and docs. */
  title: string;
  cadence: DatasetCadence;
  /** Export action path relative to the Graph root (v1.0 or beta). */
  requestPath: string;
  /** The JSON body of the export POST. */
  body(run: DatasetRunKey): Record<string, string>;
  /** Setting naming the dataset's folder, and its default. */
  prefixSetting: string;
  defaultPrefix: string;
  /** `currency`: `billingMonth=/currency=/attributeSet=`; `invoice`: `billingMonth=/invoiceId=/attributeSet=`. */
  layout: 'currency' | 'invoice';
  /**
   * Whether the export takes an `attributeSet`. One that takes none exports one column set, recorded and laid
   * out as `full` so that every dataset keeps one folder shape.
   */
  acceptsAttributeSet: boolean;
}

const unbilledBody = (run: DatasetRunKey): Record<string, string> => ({
  currencyCode: run.currency,
  billingPeriod: run.billingPeriod,
  attributeSet: run.attributeSet,
});

const billedBody = (run: DatasetRunKey): Record<string, string> => ({
  invoiceId: run.invoiceId ?? '',
  attributeSet: run.attributeSet,
});

/** Billed aggregated usage takes the invoice only (Graph v1.0 and Microsoft.Graph 6.10.0: no attributeSet). */
const invoiceOnlyBody = (run: DatasetRunKey): Record<string, string> => ({ invoiceId: run.invoiceId ?? '' });

/** Every dataset, by id. */
export const DATASETS: Readonly<Record<DatasetId, DatasetDescription>> = {
  unbilledUsage: {
    id: 'unbilledUsage',
    title: 'unbilled daily-rated usage',
    cadence: 'daily',
    requestPath: '/reports/partners/billing/usage/unbilled/export',
    body: unbilledBody,
    prefixSetting: 'DESTINATION_PREFIX',
    defaultPrefix: 'unbilled-usage',
    layout: 'currency',
    acceptsAttributeSet: true,
  },
  unbilledReconciliation: {
    id: 'unbilledReconciliation',
    title: 'unbilled invoice reconciliation',
    cadence: 'daily',
    requestPath: '/reports/partners/billing/reconciliation/unbilled/export',
    body: unbilledBody,
    prefixSetting: 'DESTINATION_PREFIX_UNBILLED_RECONCILIATION',
    defaultPrefix: 'unbilled-reconciliation',
    layout: 'currency',
    acceptsAttributeSet: true,
  },
  billedUsage: {
    id: 'billedUsage',
    title: 'billed daily-rated usage',
    cadence: 'invoice',
    requestPath: '/reports/partners/billing/usage/billed/export',
    body: billedBody,
    prefixSetting: 'DESTINATION_PREFIX_BILLED_USAGE',
    defaultPrefix: 'billed-usage',
    layout: 'invoice',
    acceptsAttributeSet: true,
  },
  billedReconciliation: {
    id: 'billedReconciliation',
    title: 'billed invoice reconciliation',
    cadence: 'invoice',
    requestPath: '/reports/partners/billing/reconciliation/billed/export',
    body: billedBody,
    prefixSetting: 'DESTINATION_PREFIX_BILLED_RECONCILIATION',
    defaultPrefix: 'billed-reconciliation',
    layout: 'invoice',
    acceptsAttributeSet: true,
  },
  billedAggregatedUsage: {
    id: 'billedAggregatedUsage',
    title: 'billed aggregated usage',
    cadence: 'invoice',
    requestPath: '/reports/partners/billing/aggregatedUsage/billed/export',
    body: invoiceOnlyBody,
    prefixSetting: 'DESTINATION_PREFIX_BILLED_AGGREGATED_USAGE',
    defaultPrefix: 'billed-aggregated-usage',
    layout: 'invoice',
    acceptsAttributeSet: false,
  },
};

/** The dataset of a run: rows written before datasets existed are unbilled usage. */
export function datasetOf(run: { dataset?: DatasetId | undefined }): DatasetDescription {
  return DATASETS[run.dataset ?? 'unbilledUsage'];
}

export function isDatasetId(value: string): value is DatasetId {
  return (DATASET_IDS as readonly string[]).includes(value);
}

/**
 * The attribute set a run of the dataset is recorded and laid out with: the requested one, or `full` for a
 * dataset whose export takes none (its folders say `attributeSet=full`, its lock and ledger rows too).
 */
export function attributeSetFor(dataset: DatasetId, requested: AttributeSet): AttributeSet {
  return DATASETS[dataset].acceptsAttributeSet ? requested : 'full';
}

/** Datasets exported per invoice (need invoice ids). */
export function isBilled(dataset: DatasetId): boolean {
  return DATASETS[dataset].cadence === 'invoice';
}

/** The export request of a run: path relative to the Graph root and JSON body. */
export function exportRequestFor(run: DatasetRunKey): {
  dataset: DatasetId;
  path: string;
  body: Record<string, string>;
} {
  const description = datasetOf(run);
  return { dataset: description.id, path: description.requestPath, body: description.body(run) };
}

/** The folder of a dataset inside the container. */
export function prefixOf(config: Pick<Config, 'destination'>, dataset: DatasetId): string {
  return dataset === 'unbilledUsage'
    ? config.destination.prefix
    : (config.destination.prefixes?.[dataset] ?? DATASETS[dataset].defaultPrefix);
}

/**
 * The series a run belongs to (the folder holding its runs and latest.json):
 * unbilled `{prefix}/billingMonth=/currency=/attributeSet=` (byte for byte today's layout for unbilled usage),
 * billed `{prefix}/billingMonth=/invoiceId=/attributeSet=`.
 */
export function seriesKey(config: Pick<Config, 'destination'>, run: DatasetRunKey, billingMonth: string): string {
  const description = datasetOf(run);
  const prefix = prefixOf(config, description.id);
  if (description.layout === 'invoice') {
    return `${prefix}/billingMonth=${billingMonth}/invoiceId=${run.invoiceId ?? ''}/attributeSet=${run.attributeSet}`;
  }
  return seriesFolder(currencyLayoutKey(prefix, run, billingMonth));
}

function currencyLayoutKey(prefix: string, run: DatasetRunKey, billingMonth: string): LayoutKey {
  return { prefix, billingMonth, currency: run.currency, attributeSet: run.attributeSet };
}

/** Where a run's files and its series' latest.json go. */
export interface DatasetLayout {
  series: string;
  runFolder: string;
  latestPath: string;
}

export function layoutFor(
  config: Pick<Config, 'destination'>,
  run: DatasetRunKey & { runId: string },
  billingMonth: string,
): DatasetLayout {
  const description = datasetOf(run);
  if (description.layout === 'currency') {
    const key = currencyLayoutKey(prefixOf(config, description.id), run, billingMonth);
    return { series: seriesFolder(key), runFolder: runFolder(key, run.runId), latestPath: latestPath(key) };
  }
  const series = seriesKey(config, run, billingMonth);
  return { series, runFolder: `${series}/run=${run.runId}`, latestPath: `${series}/latest.json` };
}

/**
 * The billing month when Graph's manifest does not name one: for unbilled data the period's month at the
 * run's start; for an invoice the month before the run's start (invoices bill the previous month).
 */
export function fallbackBillingMonth(run: DatasetRunKey, startedAt: string): string {
  return billingMonthFor(isBilled(datasetOf(run).id) ? 'last' : run.billingPeriod, startedAt);
}

/** The in-flight lock key: today's key for unbilled usage, the dataset (and invoice) in front for the others. */
export function startLockKeyFor(run: DatasetRunKey): string {
  const description = datasetOf(run);
  if (description.id === 'unbilledUsage') return startLockKey(run.currency, run.billingPeriod, run.attributeSet);
  if (description.layout === 'invoice') return `${description.id}-${run.invoiceId ?? ''}-${run.attributeSet}`;
  return `${description.id}-${startLockKey(run.currency, run.billingPeriod, run.attributeSet)}`;
}

/** A short label of what a run exports, for log lines ("USD current full", "billedUsage G000000001 full"). */
export function runLabel(run: DatasetRunKey): string {
  const description = datasetOf(run);
  if (description.layout === 'invoice') return `${description.id} ${run.invoiceId ?? ''} ${run.attributeSet}`;
  const base = `${run.currency} ${run.billingPeriod} ${run.attributeSet}`;
  return description.id === 'unbilledUsage' ? base : `${description.id} ${base}`;
}
