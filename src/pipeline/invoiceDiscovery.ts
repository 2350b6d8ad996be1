import type { Config, DatasetId } from '../config';
import { attributeSetFor, isBilled } from '../datasets';
import type { RunLedger } from './ports';

/** An invoice of the partner, as far as discovery needs it. */
export interface PartnerInvoice {
  id: string;
  /** ISO date the invoice was issued. */
  invoiceDate: string;
  billingPeriodStartDate?: string | undefined;
  currencyCode?: string | undefined;
  /** `invoice`, `voidNote`, … (Partner Center); only invoices are exported. */
  documentType?: string | undefined;
}

/** The partner's invoices (Partner Center invoices API, or its emulator). */
export interface PartnerInvoiceSource {
  listInvoices(): Promise<PartnerInvoice[]>;
}

/** One billed dataset of one invoice to export. */
export interface InvoiceExport {
  dataset: DatasetId;
  invoiceId: string;
}

/** Is this invoice within the discovery window: issued this month or in the `months` months before (UTC)? */
export function inDiscoveryWindow(invoiceDate: string, now: Date, months: number): boolean {
  const start = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - months, 1);
  const at = Date.parse(invoiceDate);
  return !Number.isNaN(at) && at >= start && at <= now.getTime();
}

/**
 * The billed exports the schedule still owes: every configured billed dataset of every invoice in the window
 * that has no complete run yet (succeeded or unchanged). An invoice that landed complete is never exported
 * again by the schedule; a manual run with `force` is the way to copy it again.
 */
export async function pendingInvoiceExports(
  input: { config: Pick<Config, 'datasets' | 'invoiceDiscovery' | 'attributeSet'>; now: Date },
  source: PartnerInvoiceSource,
  ledger: Pick<RunLedger, 'listRuns'>,
): Promise<InvoiceExport[]> {
  const datasets = input.config.datasets.filter(isBilled);
  if (datasets.length === 0) return [];
  const invoices = (await source.listInvoices()).filter(
    (invoice) =>
      (invoice.documentType === undefined || invoice.documentType.toLowerCase() === 'invoice') &&
      inDiscoveryWindow(invoice.invoiceDate, input.now, input.config.invoiceDiscovery.months),
  );
  const pending: InvoiceExport[] = [];
  for (const invoice of invoices) {
    const invoiceId = invoice.id.toUpperCase();
    for (const dataset of datasets) {
      // A dataset that takes no attribute set lands as `full` whatever EXPORT_ATTRIBUTE_SET says.
      const attributeSet = attributeSetFor(dataset, input.config.attributeSet);
      const runs = await ledger.listRuns({ dataset, invoiceId, limit: 50 });
      const landed = runs.some(
        (run) => run.attributeSet === attributeSet && (run.status === 'succeeded' || run.status === 'unchanged'),
      );
      if (!landed) pending.push({ dataset, invoiceId });
    }
  }
  return pending;
}
