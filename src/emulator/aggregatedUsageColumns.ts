import { FULL_USAGE_COLUMNS, type UsageColumn } from './usageColumns';

/**
 * Columns of the billed aggregated usage export (`POST .../aggregatedUsage/billed/export`).
 *
 * Microsoft documents the export (Graph v1.0, `partners-billing-billedaggregatedusage-export`) without a column
 * list, and its Partner Center page ("Billed Usage Aggregated" reconciliation, `usage-aggregated-reconciliation-files`)
 * names, in the part the project could read, only `PriceBenefits`, `PartnerPrice` and `EffectiveUnitPrice`, and
 * says rows match the billed daily-rated usage by ProductId, SkuId and MeterId. So the emulator writes the closest
 * documented list, the billed usage `full` columns, aggregated over the billing month (no `UsageDate`), plus the
 * two columns that page names. docs/emulator.md says so; replace this list when Microsoft publishes the table.
 */

/** The two columns the Partner Center page names that billed usage does not have. */
export const AGGREGATED_ONLY_COLUMNS = ['PartnerPrice', 'PriceBenefits'] as const;

export type AggregatedUsageColumn = Exclude<UsageColumn, 'UsageDate'> | (typeof AGGREGATED_ONLY_COLUMNS)[number];

/** 55 columns: the 54 full usage columns without UsageDate, PartnerPrice before EffectiveUnitPrice, PriceBenefits last. */
export const AGGREGATED_USAGE_COLUMNS: readonly AggregatedUsageColumn[] = [
  ...FULL_USAGE_COLUMNS.flatMap((column): AggregatedUsageColumn[] => {
    if (column === 'UsageDate') return [];
    if (column === 'EffectiveUnitPrice') return ['PartnerPrice', column];
    return [column];
  }),
  'PriceBenefits',
];
