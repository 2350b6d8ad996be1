/** An invoice the emulated partner has: billed exports exist for these only. */
export interface EmulatedInvoice {
  /** e.g. `G000000001`. */
  id: string;
  /** ISO 4217 billing currency. */
  currency: string;
  /** `YYYYMM` of the usage the invoice bills. */
  billingMonth: string;
  /** When the invoice was issued. */
  invoiceDate: Date;
  totalCharges: number;
}

const CURRENCY_SYMBOLS: Record<string, string> = { USD: '$', EUR: '€', GBP: '£', JPY: '¥', INR: '₹', AUD: '$' };

function monthOf(now: Date, monthsBack: number): { billingMonth: string; firstOfNext: Date } {
  const first = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - monthsBack, 1));
  const billingMonth = `${first.getUTCFullYear()}${String(first.getUTCMonth() + 1).padStart(2, '0')}`;
  return { billingMonth, firstOfNext: new Date(Date.UTC(first.getUTCFullYear(), first.getUTCMonth() + 1, 1)) };
}

/**
 * The default invoices, relative to `now`: G000000001 (USD) and G000000002 (EUR) bill last month and were
 * issued on the first of this month; G000000003 (USD) bills the month before. Deterministic ids and amounts.
 */
export function defaultInvoices(now: Date): EmulatedInvoice[] {
  const last = monthOf(now, 1);
  const before = monthOf(now, 2);
  return [
    {
      id: 'G000000001',
      currency: 'USD',
      billingMonth: last.billingMonth,
      invoiceDate: last.firstOfNext,
      totalCharges: 48210.37,
    },
    {
      id: 'G000000002',
      currency: 'EUR',
      billingMonth: last.billingMonth,
      invoiceDate: last.firstOfNext,
      totalCharges: 12877.05,
    },
    {
      id: 'G000000003',
      currency: 'USD',
      billingMonth: before.billingMonth,
      invoiceDate: before.firstOfNext,
      totalCharges: 45102.9,
    },
  ];
}

function link(uri: string): { self: { uri: string; method: 'GET'; headers: never[] } } {
  return { self: { uri, method: 'GET', headers: [] } };
}

/** One invoice in Partner Center's documented shape (Get a collection of invoices, REST response example). */
export function invoiceResource(invoice: EmulatedInvoice): Record<string, unknown> {
  const year = Number(invoice.billingMonth.slice(0, 4));
  const month = Number(invoice.billingMonth.slice(4, 6));
  return {
    id: invoice.id,
    invoiceDate: invoice.invoiceDate.toISOString().replace('.000Z', 'Z'),
    billingPeriodStartDate: new Date(Date.UTC(year, month - 1, 1)).toISOString().replace('.000Z', 'Z'),
    billingPeriodEndDate: new Date(Date.UTC(year, month, 0)).toISOString().replace('.000Z', 'Z'),
    totalCharges: invoice.totalCharges,
    paidAmount: 0,
    currencyCode: invoice.currency,
    currencySymbol: CURRENCY_SYMBOLS[invoice.currency] ?? invoice.currency,
    pdfDownloadLink: `/invoices/${invoice.id}/documents/statement`,
    invoiceDetails: [
      {
        invoiceLineItemType: 'billing_line_items',
        billingProvider: 'one_time',
        links: link(`/invoices/${invoice.id}/lineitems/OneTime/BillingLineItems`),
        attributes: { objectType: 'InvoiceDetail' },
      },
    ],
    documentType: 'invoice',
    invoiceType: 'Recurring',
    links: link(`/invoices/${invoice.id}`),
    attributes: { objectType: 'Invoice' },
  };
}

/** A page of the invoice collection, newest first, with a `next` link while more remain. */
export function invoiceCollection(invoices: readonly EmulatedInvoice[], size: number, offset: number): unknown {
  const sorted = [...invoices].sort(
    (a, b) => b.invoiceDate.getTime() - a.invoiceDate.getTime() || (a.id < b.id ? -1 : 1),
  );
  const page = sorted.slice(offset, offset + size);
  const links: Record<string, unknown> = link(`/invoices?size=${size}&offset=${offset}`);
  if (offset + size < sorted.length) links['next'] = link(`/invoices?size=${size}&offset=${offset + size}`).self;
  return {
    totalCount: page.length,
    items: page.map(invoiceResource),
    links,
    attributes: { objectType: 'Collection' },
  };
}
