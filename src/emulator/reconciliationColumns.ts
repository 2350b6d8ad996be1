/**
 * Columns of the invoice reconciliation exports, billed and unbilled (reference/partner-billing-api.md
 * section 5.4), PascalCase as documented, in the documented order.
 */

/** The 47 columns of `attributeSet: full`. */
export const FULL_RECONCILIATION_COLUMNS = [
  'PartnerId',
  'CustomerId',
  'CustomerName',
  'CustomerDomainName',
  'CustomerCountry',
  'InvoiceNumber',
  'MpnId',
  'Tier2MpnId',
  'OrderId',
  'OrderDate',
  'ProductId',
  'SkuId',
  'AvailabilityId',
  'SkuName',
  'ProductName',
  'ChargeType',
  'UnitPrice',
  'Quantity',
  'Subtotal',
  'TaxTotal',
  'Total',
  'Currency',
  'PriceAdjustmentDescription',
  'PublisherName',
  'PublisherId',
  'SubscriptionDescription',
  'SubscriptionId',
  'ChargeStartDate',
  'ChargeEndDate',
  'TermAndBillingCycle',
  'EffectiveUnitPrice',
  'UnitType',
  'AlternateId',
  'BillableQuantity',
  'BillingFrequency',
  'PricingCurrency',
  'PCToBCExchangeRate',
  'PCToBCExchangeRateDate',
  'MeterDescription',
  'ReservationOrderId',
  'CreditReasonCode',
  'SubscriptionStartDate',
  'SubscriptionEndDate',
  'ReferenceId',
  'ProductQualifiers',
  'PromotionId',
  'ProductCategory',
] as const;

export type ReconciliationColumn = (typeof FULL_RECONCILIATION_COLUMNS)[number];

/** Full-only columns (documented "Basic: No"). */
const NOT_BASIC: ReadonlySet<ReconciliationColumn> = new Set<ReconciliationColumn>([
  'CustomerDomainName',
  'CustomerCountry',
  'MpnId',
  'Quantity',
  'PublisherId',
  'SubscriptionDescription',
  'UnitType',
  'AlternateId',
  'BillingFrequency',
  'PCToBCExchangeRateDate',
  'MeterDescription',
  'ProductQualifiers',
]);

/** The 35 columns of `attributeSet: basic`, in the same order as the full set. */
export const BASIC_RECONCILIATION_COLUMNS: readonly ReconciliationColumn[] = FULL_RECONCILIATION_COLUMNS.filter(
  (column) => !NOT_BASIC.has(column),
);

export function reconciliationColumns(attributeSet: 'full' | 'basic'): readonly ReconciliationColumn[] {
  return attributeSet === 'full' ? FULL_RECONCILIATION_COLUMNS : BASIC_RECONCILIATION_COLUMNS;
}
