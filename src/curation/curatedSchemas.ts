import type { AttributeSet, DatasetId } from '../config';
import { AGGREGATED_USAGE_COLUMNS, type AggregatedUsageColumn } from '../emulator/aggregatedUsageColumns';
import { type ReconciliationColumn, reconciliationColumns } from '../emulator/reconciliationColumns';
import { type UsageColumn, usageColumns } from '../emulator/usageColumns';

/**
 * The curated (typed) schema of every dataset × attribute set. The column NAMES come from the one documented list
 * the emulator writes from (src/emulator/*Columns.ts), so emulator and curation cannot drift; the KIND of every
 * column is the one docs/data.md gives it (a test reads the docs' tables and compares). The `Record<Column, …>`
 * types below make a column added to a list without a kind a compile error.
 */

/** What a column's values are, as docs/data.md's "kind" column says. */
export type ColumnKind = 'text' | 'guid' | 'date' | 'decimal' | 'money' | 'json';

/**
 * Money, prices, quantities, rates and percentages. Graph writes at most 6 decimals in what Microsoft shows and the
 * emulator writes; 12 leaves that room to spare, and 26 integer digits hold any amount (a sum over DECIMAL(38, 12)
 * stays DECIMAL(38, 12) and fails loudly rather than rounding if it ever overflowed). Parquet stores it as a
 * 16-byte fixed-length DECIMAL, which Spark, Fabric, Synapse and DuckDB read as decimal(38, 12).
 */
export const DECIMAL_TYPE = 'DECIMAL(38, 12)';

/** The DuckDB type a kind is written as. */
export function sqlTypeOf(kind: ColumnKind): string {
  switch (kind) {
    case 'decimal':
    case 'money':
      return DECIMAL_TYPE;
    case 'date':
      return 'TIMESTAMP WITH TIME ZONE';
    default:
      // GUIDs stay text (as Microsoft writes them, no case change); JSON stays text so every reader can load it
      // (json(Tags), Tags->>'env' in DuckDB; JSON_VALUE in T-SQL).
      return 'VARCHAR';
  }
}

const USAGE_KINDS: Readonly<Record<UsageColumn, ColumnKind>> = {
  PartnerId: 'guid',
  PartnerName: 'text',
  CustomerId: 'guid',
  CustomerName: 'text',
  CustomerDomainName: 'text',
  CustomerCountry: 'text',
  MpnId: 'text',
  Tier2MpnId: 'text',
  InvoiceNumber: 'text',
  ProductId: 'text',
  SkuId: 'text',
  AvailabilityId: 'text',
  SkuName: 'text',
  ProductName: 'text',
  PublisherName: 'text',
  PublisherId: 'text',
  SubscriptionDescription: 'text',
  SubscriptionId: 'guid',
  ChargeStartDate: 'date',
  ChargeEndDate: 'date',
  UsageDate: 'date',
  MeterType: 'text',
  MeterCategory: 'text',
  MeterId: 'guid',
  MeterSubCategory: 'text',
  MeterName: 'text',
  MeterRegion: 'text',
  Unit: 'text',
  ResourceLocation: 'text',
  ConsumedService: 'text',
  ResourceGroup: 'text',
  ResourceURI: 'text',
  ChargeType: 'text',
  UnitPrice: 'decimal',
  Quantity: 'decimal',
  UnitType: 'text',
  BillingPreTaxTotal: 'money',
  BillingCurrency: 'text',
  PricingPreTaxTotal: 'money',
  PricingCurrency: 'text',
  ServiceInfo1: 'text',
  ServiceInfo2: 'text',
  Tags: 'json',
  AdditionalInfo: 'json',
  EffectiveUnitPrice: 'decimal',
  PCToBCExchangeRate: 'decimal',
  EntitlementId: 'guid',
  EntitlementDescription: 'text',
  PartnerEarnedCreditPercentage: 'decimal',
  CreditPercentage: 'decimal',
  CreditType: 'text',
  BenefitOrderID: 'text',
  BenefitID: 'text',
  BenefitType: 'text',
};

const RECONCILIATION_KINDS: Readonly<Record<ReconciliationColumn, ColumnKind>> = {
  PartnerId: 'guid',
  CustomerId: 'guid',
  CustomerName: 'text',
  CustomerDomainName: 'text',
  CustomerCountry: 'text',
  InvoiceNumber: 'text',
  MpnId: 'text',
  Tier2MpnId: 'text',
  OrderId: 'text',
  OrderDate: 'date',
  ProductId: 'text',
  SkuId: 'text',
  AvailabilityId: 'text',
  SkuName: 'text',
  ProductName: 'text',
  ChargeType: 'text',
  UnitPrice: 'decimal',
  Quantity: 'decimal',
  Subtotal: 'money',
  TaxTotal: 'money',
  Total: 'money',
  Currency: 'text',
  // A JSON list in Microsoft's samples, but its wording "may change": kept as text, not checked as JSON.
  PriceAdjustmentDescription: 'text',
  PublisherName: 'text',
  PublisherId: 'text',
  SubscriptionDescription: 'text',
  SubscriptionId: 'guid',
  ChargeStartDate: 'date',
  ChargeEndDate: 'date',
  TermAndBillingCycle: 'text',
  EffectiveUnitPrice: 'decimal',
  UnitType: 'text',
  AlternateId: 'text',
  BillableQuantity: 'decimal',
  BillingFrequency: 'text',
  PricingCurrency: 'text',
  PCToBCExchangeRate: 'decimal',
  PCToBCExchangeRateDate: 'date',
  MeterDescription: 'text',
  ReservationOrderId: 'text',
  CreditReasonCode: 'text',
  SubscriptionStartDate: 'date',
  SubscriptionEndDate: 'date',
  ReferenceId: 'text',
  ProductQualifiers: 'text',
  PromotionId: 'text',
  ProductCategory: 'text',
};

const AGGREGATED_KINDS: Readonly<Record<AggregatedUsageColumn, ColumnKind>> = {
  ...(Object.fromEntries(Object.entries(USAGE_KINDS).filter(([name]) => name !== 'UsageDate')) as Record<
    Exclude<UsageColumn, 'UsageDate'>,
    ColumnKind
  >),
  PartnerPrice: 'decimal',
  PriceBenefits: 'text',
};

/** The family of a dataset: which column list and which FOCUS mapping it uses. */
export type DatasetFamily = 'usage' | 'reconciliation' | 'aggregatedUsage';

export function datasetFamily(dataset: DatasetId): DatasetFamily {
  if (dataset === 'unbilledUsage' || dataset === 'billedUsage') return 'usage';
  if (dataset === 'billedAggregatedUsage') return 'aggregatedUsage';
  return 'reconciliation';
}

/** One column of a curated table. */
export interface CuratedColumn {
  name: string;
  kind: ColumnKind;
  /** DuckDB type, as written to Parquet. */
  sqlType: string;
}

/** The curated schema of a dataset and attribute set: the documented columns in documented order, typed. */
export interface CuratedSchema {
  dataset: DatasetId;
  attributeSet: AttributeSet;
  columns: readonly CuratedColumn[];
  /** The columns of the `full` set (what the FOCUS mapping is written against; absent ones read as null). */
  fullColumns: readonly CuratedColumn[];
  /** The money columns whose totals per currency are checked, and the column naming their currency. */
  totalColumns: readonly string[];
  currencyColumn: string;
}

function typed<C extends string>(names: readonly C[], kinds: Readonly<Record<C, ColumnKind>>): CuratedColumn[] {
  return names.map((name) => ({ name, kind: kinds[name], sqlType: sqlTypeOf(kinds[name]) }));
}

/**
 * The curated schema of a dataset × attribute set. Billed aggregated usage has one column set (its export takes no
 * attribute set; its folders say `full`): either value gives it.
 */
export function curatedSchema(dataset: DatasetId, attributeSet: AttributeSet): CuratedSchema {
  const family = datasetFamily(dataset);
  if (family === 'usage') {
    return {
      dataset,
      attributeSet,
      columns: typed(usageColumns(attributeSet), USAGE_KINDS),
      fullColumns: typed(usageColumns('full'), USAGE_KINDS),
      totalColumns: ['BillingPreTaxTotal'],
      currencyColumn: 'BillingCurrency',
    };
  }
  if (family === 'aggregatedUsage') {
    const columns = typed(AGGREGATED_USAGE_COLUMNS, AGGREGATED_KINDS);
    return {
      dataset,
      attributeSet: 'full',
      columns,
      fullColumns: columns,
      totalColumns: ['BillingPreTaxTotal'],
      currencyColumn: 'BillingCurrency',
    };
  }
  return {
    dataset,
    attributeSet,
    columns: typed(reconciliationColumns(attributeSet), RECONCILIATION_KINDS),
    fullColumns: typed(reconciliationColumns('full'), RECONCILIATION_KINDS),
    totalColumns: ['Subtotal', 'TaxTotal', 'Total'],
    currencyColumn: 'Currency',
  };
}
