import { AGGREGATED_USAGE_COLUMNS, type AggregatedUsageColumn } from './aggregatedUsageColumns';
import { buildTemplates, type UsageDataSpec, usageRowDraws } from './usageData';

/**
 * Billed aggregated usage rows: the billed daily-rated usage of the same invoice (same seed, size and month),
 * summed per customer, Azure subscription and resource meter over the billing month. Quantities and amounts are
 * summed in millionths, so an invoice's aggregated totals equal its billed usage totals exactly.
 */

const MICRO = 1_000_000;

interface Sum {
  quantity: number;
  pricingTotal: number;
  billingTotal: number;
}

/** The aggregated rows of a spec, in template order (one per resource meter that has usage). */
export function aggregatedUsageRows(spec: UsageDataSpec): Array<Record<AggregatedUsageColumn, string | number>> {
  const templates = buildTemplates({ ...spec, attributeSet: 'full' });
  const sums = new Map<number, Sum>();
  for (let blobIndex = 0; blobIndex < (spec.blobCount ?? 1); blobIndex++) {
    for (const draw of usageRowDraws(spec, blobIndex, templates)) {
      const sum = sums.get(draw.template) ?? { quantity: 0, pricingTotal: 0, billingTotal: 0 };
      sum.quantity += Math.round(draw.quantity * MICRO);
      sum.pricingTotal += Math.round(draw.pricingTotal * MICRO);
      sum.billingTotal += Math.round(draw.billingTotal * MICRO);
      sums.set(draw.template, sum);
    }
  }
  return [...sums.entries()]
    .sort(([a], [b]) => a - b)
    .map(([index, sum]) => {
      const { UsageDate: _day, ...row } = templates[index]!.row;
      const values: Record<string, string | number> = {
        ...row,
        InvoiceNumber: spec.invoiceId ?? '',
        Quantity: sum.quantity / MICRO,
        PricingPreTaxTotal: sum.pricingTotal / MICRO,
        BillingPreTaxTotal: sum.billingTotal / MICRO,
        // The emulated invoice has no promotion: the partner price is the price after PEC.
        PartnerPrice: row.EffectiveUnitPrice,
        PriceBenefits: '',
      };
      const projected = {} as Record<AggregatedUsageColumn, string | number>;
      for (const column of AGGREGATED_USAGE_COLUMNS) projected[column] = values[column] ?? '';
      return projected;
    });
}

/** The JSON lines of one blob: the aggregated rows cut into `blobCount` consecutive slices. */
export function* aggregatedUsageBlobChunks(
  spec: UsageDataSpec,
  blobIndex: number,
  chunkBytes = 256 * 1024,
): Generator<Buffer> {
  const rows = aggregatedUsageRows(spec);
  const perBlob = Math.ceil(rows.length / Math.max(1, spec.blobCount ?? 1));
  let text = '';
  for (const row of rows.slice(blobIndex * perBlob, (blobIndex + 1) * perBlob)) {
    text += `${JSON.stringify(row)}\n`;
    if (text.length >= chunkBytes) {
      yield Buffer.from(text, 'utf8');
      text = '';
    }
  }
  if (text.length > 0) yield Buffer.from(text, 'utf8');
}
