import type { AttributeSet, BillingPeriod, DatasetId } from '../config';
import { attributeSetFor, isBilled, runLabel } from '../datasets';
import { ExportError, errorMessage, isExportError } from '../errors';
import { redact } from '../redact';
import type { PipelineDeps } from './deps';
import { pendingInvoiceExports } from './invoiceDiscovery';
import type { Trigger } from './ports';

/** One export to start: a dataset, and its currency and period (daily datasets) or its invoice (billed ones). */
export interface ExportTarget {
  dataset: DatasetId;
  currency: string;
  billingPeriod: BillingPeriod;
  attributeSet: AttributeSet;
  invoiceId?: string | undefined;
}

/** What a start asks for (the fields of StartRequest this module reads). */
export interface TargetRequest {
  trigger: Trigger;
  datasets?: DatasetId[] | undefined;
  currencies?: string[] | undefined;
  billingPeriods?: BillingPeriod[] | undefined;
  attributeSet?: AttributeSet | undefined;
  /** Invoices of the billed datasets; absent: found by invoice discovery when it is on. */
  invoiceIds?: string[] | undefined;
  /** Told of billed datasets for which nothing is started, and why (the command line reports them). */
  onSkipped?: ((skipped: SkippedDatasets) => void) | undefined;
}

/** Why billed datasets start nothing without invoice ids and without invoice discovery. */
export const NO_INVOICES_REASON =
  'no invoice ids given (--invoices, or "invoiceIds" over HTTP) and EXPORT_INVOICE_DISCOVERY is off';

/** Billed datasets a start left out: no invoice ids to export (`needsInvoices`), or none new (`upToDate`). */
export interface SkippedDatasets {
  datasets: DatasetId[];
  kind: 'needsInvoices' | 'upToDate';
  reason: string;
}

/**
 * Billed runs have no currency or billing period of their own (the invoice decides both): they are recorded
 * with an empty currency and the period `last`.
 */
export const BILLED_CURRENCY = '';
export const BILLED_PERIOD: BillingPeriod = 'last';

/**
 * Expands a start into its exports: every daily dataset × currency × period, and every billed dataset × invoice.
 * Invoices come from the request, else from invoice discovery (EXPORT_INVOICE_DISCOVERY=partnerCenter), which
 * leaves out the invoices that already landed complete. A discovery failure does not keep the other exports
 * from starting: it is returned in `problems`.
 */
export async function exportTargets(
  request: TargetRequest,
  deps: PipelineDeps,
): Promise<{ targets: ExportTarget[]; problems: ExportError[] }> {
  const { config } = deps;
  const datasets = request.datasets ?? config.datasets;
  const currencies = request.currencies ?? config.currencies;
  const periods = request.billingPeriods ?? config.billingPeriods;
  const attributeSet = request.attributeSet ?? config.attributeSet;
  const targets: ExportTarget[] = [];
  const problems: ExportError[] = [];

  for (const dataset of datasets.filter((d) => !isBilled(d))) {
    for (const currency of currencies) {
      for (const billingPeriod of periods) targets.push({ dataset, currency, billingPeriod, attributeSet });
    }
  }

  const billed = datasets.filter(isBilled);
  if (billed.length === 0) return { targets, problems };
  const billedTarget = (dataset: DatasetId, invoiceId: string): ExportTarget => ({
    dataset,
    currency: BILLED_CURRENCY,
    billingPeriod: BILLED_PERIOD,
    attributeSet: attributeSetFor(dataset, attributeSet),
    invoiceId: invoiceId.toUpperCase(),
  });
  if (request.invoiceIds !== undefined) {
    for (const dataset of billed) for (const id of request.invoiceIds) targets.push(billedTarget(dataset, id));
    return { targets, problems };
  }
  if (config.invoiceDiscovery.mode !== 'partnerCenter' || deps.invoices === undefined) {
    const reason = NO_INVOICES_REASON;
    deps.logger.warn(`The billed datasets ${billed.join(', ')} need invoice ids: ${reason}; nothing started for them.`);
    request.onSkipped?.({ datasets: billed, kind: 'needsInvoices', reason });
    return { targets, problems };
  }
  try {
    const pending = await pendingInvoiceExports(
      { config: { ...config, datasets: billed, attributeSet }, now: deps.clock.now() },
      deps.invoices,
      deps.ledger,
    );
    for (const { dataset, invoiceId } of pending) targets.push(billedTarget(dataset, invoiceId));
    if (pending.length === 0) {
      request.onSkipped?.({
        datasets: billed,
        kind: 'upToDate',
        reason: 'invoice discovery: every invoice in the window has landed complete',
      });
    }
    deps.logger.info(
      pending.length === 0
        ? 'Invoice discovery: every invoice in the window has landed; no billed export to start.'
        : `Invoice discovery: starting ${pending.map((p) => runLabel(billedTarget(p.dataset, p.invoiceId))).join(', ')}.`,
    );
  } catch (error) {
    const problem = isExportError(error)
      ? error
      : new ExportError('PARTNER_CENTER_UNAVAILABLE', `Invoice discovery failed: ${errorMessage(error)}`, {
          retryable: true,
          cause: error,
        });
    deps.logger.error(`Invoice discovery failed (${problem.code}): ${redact(problem.message)}`);
    problems.push(problem);
  }
  return { targets, problems };
}
