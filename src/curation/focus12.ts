import { type DatasetFamily, DECIMAL_TYPE } from './curatedSchemas';

/**
 * The FOCUS 1.2 mapping of the Graph partner billing datasets, as data: one entry per output column with a DuckDB
 * SQL expression per dataset family. The expressions read the curated row as `s` (every column of the `full` set;
 * columns the attribute set lacks read as NULL), the open-data lookups as `s.__pu_*` (PricingUnits.csv), `s.__rg_*`
 * (Regions.csv), `s.__sv_*` (Services.csv by consumed service and resource type) and `s.__svt_*` (Services.csv by
 * resource type alone), the resource type id parsed from ResourceURI as `s.__type` (usage), the shared values of
 * FOCUS_1_2_SHARED as `s.__{name}`, the constants as `p` (billing period, source run and file), and, for
 * reconciliation, `s.__is_tax` (true on the separate Tax row of a line). Reasons and precedents: /work/wt/focus-mapping-draft.md (for the docs).
 *
 * Spec: FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec, tag v1.2 (commit 7296e314), `specification/columns/*.md`.
 * A later version gets a module of its own beside this one (focus13.ts …), chosen by FOCUS_VERSION.
 */
export const FOCUS_VERSION = '1.2';

/** What the FinOps hub's Costs_raw reads as the source (x_Source* columns; set all four, or the hub guesses). */
export const SOURCE_NAME = 'Microsoft Graph partner billing';
export const SOURCE_PROVIDER = 'Microsoft';

/** How FOCUS 1.2 classes a column (from the column's spec file). */
export type FocusLevel = 'Mandatory' | 'Recommended' | 'Conditional' | 'Extension';

export interface FocusColumn {
  name: string;
  level: FocusLevel;
  /** DuckDB type of the written column. */
  sqlType: string;
  /** SQL per family; absent: NULL. */
  usage?: string;
  aggregatedUsage?: string;
  reconciliation?: string;
}

const DEC = DECIMAL_TYPE;
const TS = 'TIMESTAMP WITH TIME ZONE';
const STR = 'VARCHAR';

/**
 * `value × factor` as DECIMAL(38, 12); a missing factor counts as 1. The product of two DECIMAL(38, 12) values has
 * 24 decimals, and DuckDB's rounding back to 12 is a 128-bit division that costs about 3 µs a row on one thread: the
 * costliest step of the FOCUS select. When the factor is 1 the product is the value itself, so that case skips it
 * (the same result, exactly).
 */
const times = (value: string, factor: string): string =>
  `CASE WHEN coalesce(${factor}, 1) = 1 THEN ${value} ELSE CAST(${value} * ${factor} AS ${DEC}) END`;
/** Prices are in the pricing currency; FOCUS prices and costs are in the billing currency. */
const inBilling = (column: string): string => times(`s.${column}`, 's.PCToBCExchangeRate');
const USAGE_UNIT = 'coalesce(s.Unit, s.UnitType)';

/**
 * Values several columns share, computed once per row in this order (a DECIMAL(38, 12) product is a 128-bit multiply
 * and rescale: computing each once halved the FOCUS select's time). The mapping reads them as `s.__{name}`.
 */
export const FOCUS_1_2_SHARED: Readonly<Record<DatasetFamily, readonly (readonly [string, string])[]>> = {
  usage: [
    ['__unit_price', inBilling('UnitPrice')],
    ['__effective_price', inBilling('EffectiveUnitPrice')],
    ['__contracted_cost', `CAST(s.__unit_price * s.Quantity AS ${DEC})`],
  ],
  aggregatedUsage: [
    ['__unit_price', inBilling('UnitPrice')],
    ['__effective_price', inBilling('EffectiveUnitPrice')],
    ['__contracted_cost', `CAST(s.__unit_price * s.Quantity AS ${DEC})`],
  ],
  reconciliation: [
    ['__unit_price', inBilling('UnitPrice')],
    ['__effective_price', inBilling('EffectiveUnitPrice')],
    ['__contracted_cost', `CAST(s.__unit_price * s.BillableQuantity AS ${DEC})`],
  ],
};
const BENEFIT = `CASE WHEN s.BenefitType IS NULL THEN NULL WHEN lower(s.BenefitType) LIKE '%savings%' THEN 'Savings Plan' ELSE 'Reservation' END`;
const TAX = 's.__is_tax';
/** "Tax" rows only carry the tax; everything priced belongs to the charge row. */
const notTax = (expression: string): string => `CASE WHEN ${TAX} THEN NULL ELSE ${expression} END`;
const PEC = `regexp_matches(coalesce(s.PriceAdjustmentDescription, ''), '(?i)partner earned credit')`;

/** Usage and aggregated usage share every expression but the charge period. */
function usageLike(name: string, level: FocusLevel, sqlType: string, expression: string | undefined): FocusColumn {
  return expression === undefined
    ? { name, level, sqlType }
    : { name, level, sqlType, usage: expression, aggregatedUsage: expression };
}

function column(
  name: string,
  level: FocusLevel,
  sqlType: string,
  usage: string | undefined,
  reconciliation: string | undefined,
): FocusColumn {
  const entry = usageLike(name, level, sqlType, usage);
  return reconciliation === undefined ? entry : { ...entry, reconciliation };
}

/** The 57 FOCUS 1.2 columns (alphabetical, as the spec lists them), then the FinOps toolkit's `x_` columns. */
export const FOCUS_1_2_COLUMNS: readonly FocusColumn[] = [
  column('AvailabilityZone', 'Recommended', STR, undefined, undefined),
  column(
    'BilledCost',
    'Mandatory',
    DEC,
    's.BillingPreTaxTotal',
    `CASE WHEN ${TAX} THEN s.TaxTotal ELSE s.Subtotal END`,
  ),
  column('BillingAccountId', 'Mandatory', STR, 's.PartnerId', 's.PartnerId'),
  column('BillingAccountName', 'Mandatory', STR, 's.PartnerName', undefined),
  column('BillingAccountType', 'Conditional', STR, `'CSP Partner'`, `'CSP Partner'`),
  column('BillingCurrency', 'Mandatory', STR, 's.BillingCurrency', 's.Currency'),
  column('BillingPeriodEnd', 'Mandatory', TS, 'p.billing_period_end', 'p.billing_period_end'),
  column('BillingPeriodStart', 'Mandatory', TS, 'p.billing_period_start', 'p.billing_period_start'),
  column(
    'CapacityReservationId',
    'Conditional',
    STR,
    `nullif(json_extract_string(s.AdditionalInfo, '$.VMCapacityReservationId'), '')`,
    undefined,
  ),
  column(
    'CapacityReservationStatus',
    'Conditional',
    STR,
    `CASE WHEN nullif(json_extract_string(s.AdditionalInfo, '$.VMCapacityReservationId'), '') IS NOT NULL THEN 'Used' END`,
    undefined,
  ),
  column(
    'ChargeCategory',
    'Mandatory',
    STR,
    `'Usage'`,
    `CASE WHEN ${TAX} THEN 'Tax' WHEN s.CreditReasonCode IS NOT NULL THEN 'Credit' ELSE 'Purchase' END`,
  ),
  column('ChargeClass', 'Mandatory', STR, undefined, undefined),
  column(
    'ChargeDescription',
    'Mandatory',
    STR,
    'coalesce(s.ProductName, s.SkuName)',
    `CASE WHEN ${TAX} THEN 'Tax: ' || coalesce(s.ProductName, s.SkuName) ELSE coalesce(s.ProductName, s.SkuName) END`,
  ),
  column(
    'ChargeFrequency',
    'Recommended',
    STR,
    `'Usage-Based'`,
    `CASE WHEN s.BillingFrequency IS NOT NULL OR s.TermAndBillingCycle ILIKE '%billing%' THEN 'Recurring' ELSE 'One-Time' END`,
  ),
  {
    name: 'ChargePeriodEnd',
    level: 'Mandatory',
    sqlType: TS,
    usage: `s.UsageDate + INTERVAL 1 DAY`,
    aggregatedUsage: `s.ChargeEndDate + INTERVAL 1 DAY`,
    reconciliation: `s.ChargeEndDate + INTERVAL 1 DAY`,
  },
  {
    name: 'ChargePeriodStart',
    level: 'Mandatory',
    sqlType: TS,
    usage: 's.UsageDate',
    aggregatedUsage: 's.ChargeStartDate',
    reconciliation: 's.ChargeStartDate',
  },
  column(
    'CommitmentDiscountCategory',
    'Conditional',
    STR,
    `CASE WHEN s.BenefitType IS NULL THEN NULL WHEN lower(s.BenefitType) LIKE '%savings%' THEN 'Spend' ELSE 'Usage' END`,
    undefined,
  ),
  column('CommitmentDiscountId', 'Conditional', STR, 'coalesce(s.BenefitID, s.BenefitOrderID)', undefined),
  column('CommitmentDiscountName', 'Conditional', STR, undefined, undefined),
  column('CommitmentDiscountQuantity', 'Conditional', DEC, undefined, undefined),
  column(
    'CommitmentDiscountStatus',
    'Conditional',
    STR,
    `CASE WHEN s.BenefitType IS NOT NULL THEN 'Used' END`,
    undefined,
  ),
  column('CommitmentDiscountType', 'Conditional', STR, BENEFIT, undefined),
  column('CommitmentDiscountUnit', 'Conditional', STR, undefined, undefined),
  column('ConsumedQuantity', 'Conditional', DEC, times('s.Quantity', 's.__pu_block_size'), undefined),
  column('ConsumedUnit', 'Conditional', STR, `coalesce(s.__pu_unit, ${USAGE_UNIT})`, undefined),
  column(
    'ContractedCost',
    'Mandatory',
    DEC,
    's.__contracted_cost',
    `CASE WHEN ${TAX} THEN s.TaxTotal ELSE s.__contracted_cost END`,
  ),
  column('ContractedUnitPrice', 'Conditional', DEC, 's.__unit_price', notTax('s.__unit_price')),
  column(
    'EffectiveCost',
    'Mandatory',
    DEC,
    's.BillingPreTaxTotal',
    `CASE WHEN ${TAX} THEN s.TaxTotal ELSE s.Subtotal END`,
  ),
  column('InvoiceId', 'Recommended', STR, 's.InvoiceNumber', 's.InvoiceNumber'),
  column('InvoiceIssuerName', 'Mandatory', STR, `'Microsoft'`, `'Microsoft'`),
  column(
    'ListCost',
    'Mandatory',
    DEC,
    's.__contracted_cost',
    `CASE WHEN ${TAX} THEN s.TaxTotal ELSE s.__contracted_cost END`,
  ),
  column('ListUnitPrice', 'Conditional', DEC, 's.__unit_price', notTax('s.__unit_price')),
  column(
    'PricingCategory',
    'Conditional',
    STR,
    `CASE WHEN s.BenefitType IS NOT NULL THEN 'Committed' ELSE 'Standard' END`,
    notTax(`'Standard'`),
  ),
  column('PricingCurrency', 'Conditional', STR, 's.PricingCurrency', 's.PricingCurrency'),
  column('PricingCurrencyContractedUnitPrice', 'Conditional', DEC, undefined, undefined),
  column('PricingCurrencyEffectiveCost', 'Conditional', DEC, undefined, undefined),
  column('PricingCurrencyListUnitPrice', 'Conditional', DEC, undefined, undefined),
  column('PricingQuantity', 'Mandatory', DEC, 's.Quantity', notTax('s.BillableQuantity')),
  column(
    'PricingUnit',
    'Mandatory',
    STR,
    `coalesce(s.__pu_unit, ${USAGE_UNIT})`,
    notTax(`coalesce(s.__pu_unit, s.UnitType, 'Units')`),
  ),
  column('ProviderName', 'Mandatory', STR, `'Microsoft'`, `'Microsoft'`),
  column('PublisherName', 'Mandatory', STR, 's.PublisherName', 's.PublisherName'),
  column('RegionId', 'Conditional', STR, 's.__rg_region_id', undefined),
  column('RegionName', 'Conditional', STR, 's.__rg_region_name', undefined),
  column('ResourceId', 'Conditional', STR, 's.ResourceURI', undefined),
  column('ResourceName', 'Conditional', STR, `nullif(regexp_extract(s.ResourceURI, '[^/]+$'), '')`, undefined),
  // The type id; the FinOps hub replaces an id (it contains '/') by the display name from its ResourceTypes table.
  column('ResourceType', 'Conditional', STR, 's.__type', undefined),
  column('ServiceCategory', 'Mandatory', STR, `coalesce(s.__sv_category, s.__svt_category, 'Other')`, `'Other'`),
  column(
    'ServiceName',
    'Mandatory',
    STR,
    'coalesce(s.__sv_name, s.__svt_name, s.MeterCategory, s.SkuName)',
    'coalesce(s.ProductName, s.SkuName)',
  ),
  column(
    'ServiceSubcategory',
    'Recommended',
    STR,
    `coalesce(s.__sv_subcategory, s.__svt_subcategory, 'Other (Other)')`,
    `'Other (Other)'`,
  ),
  column('SkuId', 'Conditional', STR, `s.ProductId || '/' || s.SkuId`, `s.ProductId || '/' || s.SkuId`),
  column('SkuMeter', 'Conditional', STR, 's.MeterName', undefined),
  column('SkuPriceDetails', 'Conditional', STR, undefined, undefined),
  column('SkuPriceId', 'Conditional', STR, undefined, undefined),
  column('SubAccountId', 'Conditional', STR, 's.EntitlementId', 's.SubscriptionId'),
  column('SubAccountName', 'Conditional', STR, 's.EntitlementDescription', 's.SubscriptionDescription'),
  column(
    'SubAccountType',
    'Conditional',
    STR,
    `CASE WHEN s.EntitlementId IS NOT NULL THEN 'Subscription' END`,
    `CASE WHEN s.SubscriptionId IS NOT NULL THEN 'CSP Subscription' END`,
  ),
  column('Tags', 'Conditional', STR, `CASE WHEN json_type(s.Tags) = 'OBJECT' THEN s.Tags END`, undefined),
  // The FinOps toolkit's columns (Costs_raw), then ours (x_ + the Graph name: kept in focus/, dropped by a hub).
  column('x_BilledUnitPrice', 'Extension', DEC, 's.__effective_price', notTax('s.__effective_price')),
  column('x_BillingAccountId', 'Extension', STR, 's.PartnerId', 's.PartnerId'),
  column('x_BillingAccountName', 'Extension', STR, 's.PartnerName', undefined),
  column('x_BillingExchangeRate', 'Extension', DEC, 's.PCToBCExchangeRate', 's.PCToBCExchangeRate'),
  column('x_BillingExchangeRateDate', 'Extension', TS, undefined, 's.PCToBCExchangeRateDate'),
  column('x_CustomerId', 'Extension', STR, 's.CustomerId', 's.CustomerId'),
  column('x_CustomerName', 'Extension', STR, 's.CustomerName', 's.CustomerName'),
  column('x_EffectiveUnitPrice', 'Extension', DEC, 's.__effective_price', notTax('s.__effective_price')),
  column(
    'x_PartnerCreditApplied',
    'Extension',
    STR,
    `CASE WHEN s.PartnerEarnedCreditPercentage IS NULL THEN NULL WHEN s.PartnerEarnedCreditPercentage > 0 THEN 'true' ELSE 'false' END`,
    `CASE WHEN s.PriceAdjustmentDescription IS NULL THEN NULL WHEN ${PEC} THEN 'true' ELSE 'false' END`,
  ),
  column(
    'x_PartnerCreditRate',
    'Extension',
    STR,
    `CAST(CAST(s.PartnerEarnedCreditPercentage / 100 AS DECIMAL(18, 6)) AS DOUBLE)::VARCHAR`,
    `CASE WHEN ${PEC} THEN CAST(TRY_CAST(regexp_extract(s.PriceAdjustmentDescription, '([0-9]+(\\.[0-9]+)?)\\s*%', 1) AS DECIMAL(18, 6)) / 100 AS DOUBLE)::VARCHAR END`,
  ),
  column(
    'x_PricingBlockSize',
    'Extension',
    DEC,
    'coalesce(s.__pu_block_size, 1)',
    notTax('coalesce(s.__pu_block_size, 1)'),
  ),
  column('x_PricingUnitDescription', 'Extension', STR, USAGE_UNIT, notTax('s.UnitType')),
  column('x_PublisherId', 'Extension', STR, 's.PublisherId', 's.PublisherId'),
  column('x_ResellerId', 'Extension', STR, 's.Tier2MpnId', 's.Tier2MpnId'),
  column(
    'x_ResourceGroupName',
    'Extension',
    STR,
    `coalesce(s.ResourceGroup, nullif(regexp_extract(s.ResourceURI, '(?i)/resourceGroups/([^/]+)', 1), ''))`,
    undefined,
  ),
  column('x_ResourceType', 'Extension', STR, 's.__type', undefined),
  column('x_ServiceModel', 'Extension', STR, 'coalesce(s.__sv_model, s.__svt_model)', undefined),
  column('x_ServicePeriodEnd', 'Extension', TS, 's.ChargeEndDate + INTERVAL 1 DAY', 's.ChargeEndDate + INTERVAL 1 DAY'),
  column('x_ServicePeriodStart', 'Extension', TS, 's.ChargeStartDate', 's.ChargeStartDate'),
  column('x_SkuDescription', 'Extension', STR, 's.SkuName', 's.SkuName'),
  column('x_SkuDetails', 'Extension', STR, 's.AdditionalInfo', undefined),
  column('x_SkuMeterCategory', 'Extension', STR, 's.MeterCategory', undefined),
  column('x_SkuMeterId', 'Extension', STR, 's.MeterId', undefined),
  column('x_SkuMeterSubcategory', 'Extension', STR, 's.MeterSubCategory', undefined),
  column('x_SkuOrderId', 'Extension', STR, 's.BenefitOrderID', 's.ReservationOrderId'),
  column('x_SkuRegion', 'Extension', STR, 's.MeterRegion', undefined),
  column(
    'x_SkuTerm',
    'Extension',
    'INTEGER',
    undefined,
    `CASE WHEN regexp_matches(s.TermAndBillingCycle, '(?i)\\b(one|1)[- ]year') THEN 12 WHEN regexp_matches(s.TermAndBillingCycle, '(?i)\\b(three|3)[- ]year') THEN 36 WHEN regexp_matches(s.TermAndBillingCycle, '(?i)\\b(one|1)[- ]month') THEN 1 END`,
  ),
  column('x_SourceName', 'Extension', STR, `'${SOURCE_NAME}'`, `'${SOURCE_NAME}'`),
  column('x_SourceProvider', 'Extension', STR, `'${SOURCE_PROVIDER}'`, `'${SOURCE_PROVIDER}'`),
  column('x_SourceType', 'Extension', STR, 'p.dataset', 'p.dataset'),
  column('x_SourceVersion', 'Extension', STR, `'${FOCUS_VERSION}'`, `'${FOCUS_VERSION}'`),
  // Ours: lossless extras and lineage (run, file, row of the raw file counting rejected rows).
  column('x_ChargeType', 'Extension', STR, 's.ChargeType', 's.ChargeType'),
  column('x_CustomerCountry', 'Extension', STR, 's.CustomerCountry', 's.CustomerCountry'),
  column('x_CustomerDomainName', 'Extension', STR, 's.CustomerDomainName', 's.CustomerDomainName'),
  column('x_MpnId', 'Extension', STR, 's.MpnId', 's.MpnId'),
  column('x_PricingPreTaxTotal', 'Extension', DEC, 's.PricingPreTaxTotal', undefined),
  column('x_Quantity', 'Extension', DEC, undefined, notTax('s.Quantity')),
  column('x_SubscriptionId', 'Extension', STR, 's.SubscriptionId', 's.SubscriptionId'),
  column('x_SourceRunId', 'Extension', STR, 'p.run_id', 'p.run_id'),
  column('x_SourceFile', 'Extension', STR, 'p.file_name', 'p.file_name'),
  column('x_SourceRow', 'Extension', 'BIGINT', 's.__row', 's.__row'),
];

/** The 21 columns FOCUS 1.2 makes mandatory. */
export const FOCUS_1_2_MANDATORY: readonly string[] = FOCUS_1_2_COLUMNS.filter(
  (entry) => entry.level === 'Mandatory',
).map((entry) => entry.name);

/** The expression of a column for a family (typed NULL when the family cannot fill it). */
export function focusExpression(entry: FocusColumn, family: DatasetFamily): string {
  const expression = entry[family];
  return `CAST(${expression ?? 'NULL'} AS ${entry.sqlType})`;
}
