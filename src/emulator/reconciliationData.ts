import { reconciliationColumns } from './reconciliationColumns';
import { pick, randomCode, randomGuid, randomInt, seededRandom } from './seededRandom';
import type { UsageDataSpec } from './usageData';

/**
 * Invoice reconciliation rows (billed and unbilled): the partner's customers, their license-based and
 * Azure plan charges of the billing month. Deterministic: the same spec and blob index give the same bytes.
 */

interface Offer {
  productName: string;
  skuName: string;
  productId: string;
  skuId: string;
  category: string;
  /** Price per license per month, in USD. */
  monthlyPrice: number;
  term: string;
  billingFrequency: string;
  unitType: string;
  qualifiers: string;
}

const OFFERS: readonly Offer[] = [
  {
    productName: 'Microsoft 365 Business Basic',
    skuName: 'Microsoft 365 Business Basic',
    productId: 'CFQ7TTC0LH18',
    skuId: '0001',
    category: 'OnlineServicesNCE',
    monthlyPrice: 6,
    term: '1 Year Subscription',
    billingFrequency: 'Monthly',
    unitType: 'Licenses',
    qualifiers: '',
  },
  {
    productName: 'Microsoft 365 Business Premium',
    skuName: 'Microsoft 365 Business Premium',
    productId: 'CFQ7TTC0LCHC',
    skuId: '0002',
    category: 'OnlineServicesNCE',
    monthlyPrice: 22,
    term: '1 Year Subscription',
    billingFrequency: 'Monthly',
    unitType: 'Licenses',
    qualifiers: '',
  },
  {
    productName: 'Microsoft 365 E3',
    skuName: 'Microsoft 365 E3',
    productId: 'CFQ7TTC0LFLZ',
    skuId: '0001',
    category: 'OnlineServicesNCE',
    monthlyPrice: 36,
    term: '1 Month Subscription',
    billingFrequency: 'Monthly',
    unitType: 'Licenses',
    qualifiers: '',
  },
  {
    productName: 'Microsoft Teams Essentials',
    skuName: 'Microsoft Teams Essentials',
    productId: 'CFQ7TTC0RL1G',
    skuId: '0001',
    category: 'OnlineServicesNCE',
    monthlyPrice: 4,
    term: '1 Year Subscription',
    billingFrequency: 'Annual',
    unitType: 'Licenses',
    qualifiers: '',
  },
  {
    productName: 'Dynamics 365 Business Central Essentials',
    skuName: 'Dynamics 365 Business Central Essentials',
    productId: 'CFQ7TTC0LH1W',
    skuId: '0001',
    category: 'OnlineServicesNCE',
    monthlyPrice: 70,
    term: '1 Year Subscription',
    billingFrequency: 'Monthly',
    unitType: 'Licenses',
    qualifiers: '',
  },
  {
    productName: 'Exchange Online (Plan 1)',
    skuName: 'Exchange Online (Plan 1)',
    productId: 'CFQ7TTC0LH16',
    skuId: '0001',
    category: 'OnlineServicesNCE',
    monthlyPrice: 4,
    term: '1 Month Subscription',
    billingFrequency: 'Monthly',
    unitType: 'Licenses',
    qualifiers: '["AddOn"]',
  },
  {
    productName: 'Azure plan',
    skuName: 'Azure plan',
    productId: 'DZH318Z0BPS6',
    skuId: '0001',
    category: 'Azure',
    monthlyPrice: 0,
    term: 'None',
    billingFrequency: 'Monthly',
    unitType: '',
    qualifiers: '["Consumption"]',
  },
];

const CUSTOMERS = [
  'Fabrikam Inc',
  'Northwind Traders',
  'Tailspin Toys',
  'Wide World Importers',
  'Adventure Works Cycles',
  'Woodgrove Bank',
  'Litware Inc',
  'Proseware Inc',
  'Alpine Ski House',
  'Coho Winery',
  'Fourth Coffee',
  'Relecloud',
  'Trey Research',
  'VanArsdel Ltd',
  'Wingtip Toys',
  'Contoso Pharmaceuticals',
];

const COUNTRY_BY_CURRENCY: Record<string, string> = {
  USD: 'US',
  EUR: 'DE',
  GBP: 'GB',
  INR: 'IN',
  AUD: 'AU',
  JPY: 'JP',
  CAD: 'CA',
  CHF: 'CH',
};

/** Rough VAT/sales tax of the billing country. */
const TAX_RATE: Record<string, number> = { US: 0, DE: 0.19, GB: 0.2, IN: 0.18, AU: 0.1, JP: 0.1, CA: 0.05, CH: 0.081 };

const DISCOUNTS = ['', '', '', '["5.0% Tier 2 Promotion"]', '["Partner Earned Credit 15%"]'];
const CHARGE_TYPES = ['cycleCharge', 'cycleCharge', 'cycleCharge', 'new', 'renew', 'addQuantity'];

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

function round4(value: number): number {
  return Math.round(value * 10000) / 10000;
}

function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '');
}

function isoDay(year: number, month: number, day: number): string {
  return new Date(Date.UTC(year, month - 1, day)).toISOString().replace('.000Z', 'Z');
}

/**
 * The JSON lines of one reconciliation blob, as chunks of about `chunkBytes` characters. Unbilled rows have
 * no invoice number; billed rows carry the invoice of the spec.
 */
export function* reconciliationBlobChunks(
  spec: UsageDataSpec,
  blobIndex: number,
  chunkBytes = 256 * 1024,
): Generator<Buffer> {
  const columns = reconciliationColumns(spec.attributeSet);
  const world = seededRandom('reconciliation-world', spec.seed, spec.currency);
  const year = Number(spec.billingMonth.slice(0, 4));
  const month = Number(spec.billingMonth.slice(4, 6));
  const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const country = COUNTRY_BY_CURRENCY[spec.currency] ?? 'US';
  const taxRate = TAX_RATE[country] ?? 0;
  const exchangeRate = spec.currency === 'USD' ? 1 : round4(0.5 + world() * 1.5);
  const customers = CUSTOMERS.map((name, index) => ({
    id: randomGuid(world),
    name,
    domain: `${slug(name)}${index + 1}.onmicrosoft.com`,
    tier2: world() < 0.3 ? String(randomInt(world, 1000000, 9999999)) : '',
  }));
  const random = seededRandom(
    'reconciliation-rows',
    spec.seed,
    spec.dataset ?? 'unbilledReconciliation',
    spec.currency,
    spec.billingMonth,
    spec.invoiceId ?? '',
    blobIndex,
  );
  let text = '';
  for (let row = 0; row < spec.rowsPerBlob; row++) {
    const customer = pick(random, customers);
    const offer = pick(random, OFFERS);
    const azure = offer.category === 'Azure';
    const quantity = azure ? 1 : randomInt(random, 1, 250);
    const startDay = random() < 0.8 ? 1 : randomInt(random, 2, days);
    const prorate = (days - startDay + 1) / days;
    const discount = pick(random, DISCOUNTS);
    const unitPrice = azure ? round2(50 + random() * 4000) : round4(offer.monthlyPrice * exchangeRate);
    const effectiveUnitPrice = round4(unitPrice * (discount === '' ? 1 : 0.95) * (azure ? 1 : prorate));
    const billableQuantity = azure ? 1 : round4(quantity * prorate);
    const subtotal = round2(effectiveUnitPrice * quantity);
    const tax = round2(subtotal * taxRate);
    const subscriptionStart = isoDay(year - (random() < 0.5 ? 1 : 0), month, startDay);
    const values: Record<string, string | number> = {
      PartnerId: spec.partnerTenantId,
      CustomerId: customer.id,
      CustomerName: customer.name,
      CustomerDomainName: customer.domain,
      CustomerCountry: country,
      InvoiceNumber: spec.invoiceId ?? '',
      MpnId: '6543210',
      Tier2MpnId: customer.tier2,
      OrderId: randomCode(random, 32).toLowerCase(),
      OrderDate: subscriptionStart,
      ProductId: offer.productId,
      SkuId: offer.skuId,
      AvailabilityId: `${offer.productId.slice(0, 8)}${randomCode(random, 4)}`,
      SkuName: offer.skuName,
      ProductName: offer.productName,
      ChargeType: azure ? 'usage' : pick(random, CHARGE_TYPES),
      UnitPrice: unitPrice,
      Quantity: quantity,
      Subtotal: subtotal,
      TaxTotal: tax,
      Total: round2(subtotal + tax),
      Currency: spec.currency,
      PriceAdjustmentDescription: discount,
      PublisherName: 'Microsoft Corporation',
      PublisherId: '',
      SubscriptionDescription: offer.productName,
      SubscriptionId: randomGuid(random),
      ChargeStartDate: isoDay(year, month, startDay),
      ChargeEndDate: isoDay(year, month, days),
      TermAndBillingCycle: azure ? 'None' : `${offer.term}, ${offer.billingFrequency} billing`,
      EffectiveUnitPrice: effectiveUnitPrice,
      UnitType: offer.unitType,
      AlternateId: randomCode(random, 12).toLowerCase(),
      BillableQuantity: billableQuantity,
      BillingFrequency: offer.billingFrequency,
      PricingCurrency: 'USD',
      PCToBCExchangeRate: exchangeRate,
      PCToBCExchangeRateDate: isoDay(year, month, 1),
      MeterDescription: azure ? 'Azure plan consumption' : '',
      ReservationOrderId: '',
      CreditReasonCode: '',
      SubscriptionStartDate: subscriptionStart,
      SubscriptionEndDate: isoDay(year + 1, month, Math.max(1, startDay - 1)),
      ReferenceId: randomGuid(random),
      ProductQualifiers: offer.qualifiers,
      PromotionId: discount.includes('Promotion') ? randomCode(random, 12) : '',
      ProductCategory: offer.category,
    };
    const projected: Record<string, string | number> = {};
    for (const column of columns) projected[column] = values[column] ?? '';
    text += `${JSON.stringify(projected)}\n`;
    if (text.length >= chunkBytes) {
      yield Buffer.from(text, 'utf8');
      text = '';
    }
  }
  if (text.length > 0) yield Buffer.from(text, 'utf8');
}
