import type { DatasetId } from '../config';
import { pick, randomCode, randomGuid, randomInt, seededRandom } from './seededRandom';
import { type UsageColumn, usageColumns } from './usageColumns';

/** What one generated data set is made of. Everything in it is derived from these fields alone. */
export interface UsageDataSpec {
  seed: number;
  /** ISO 4217 billing currency, upper case. */
  currency: string;
  attributeSet: 'full' | 'basic';
  /** `YYYYMM`. */
  billingMonth: string;
  /** Usage days present in the data (1..days of the month). */
  usageDays: number;
  partnerTenantId: string;
  rowsPerBlob: number;
  /** The dataset (absent: unbilledUsage). */
  dataset?: DatasetId | undefined;
  /** The invoice of a billed dataset: written as InvoiceNumber. */
  invoiceId?: string | undefined;
  /** Blobs of the data set (absent: 1): billed aggregated usage sums the rows of all of them. */
  blobCount?: number | undefined;
}

/** Approximate rates from the pricing currency (USD) to common billing currencies. */
const EXCHANGE_RATES: Record<string, number> = {
  USD: 1,
  EUR: 0.921834,
  GBP: 0.789912,
  INR: 83.118,
  AUD: 1.522706,
  JPY: 149.51,
  CAD: 1.361045,
  CHF: 0.881203,
  SEK: 10.52881,
  NOK: 10.71452,
  DKK: 6.876111,
  BRL: 4.972,
  NZD: 1.63412,
};

const COUNTRIES: Record<string, readonly string[]> = {
  USD: ['US', 'US', 'US', 'PR', 'CO'],
  EUR: ['DE', 'FR', 'NL', 'IE', 'ES', 'IT', 'BE', 'AT'],
  GBP: ['GB'],
  INR: ['IN'],
  AUD: ['AU'],
  JPY: ['JP'],
  CAD: ['CA'],
  CHF: ['CH'],
  SEK: ['SE'],
  NOK: ['NO'],
  DKK: ['DK'],
  BRL: ['BR'],
  NZD: ['NZ'],
};

const CUSTOMER_NAMES = [
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
  'Graphic Design Institute',
  'Humongous Insurance',
  'Lucerne Publishing',
  "Margie's Travel",
  'Relecloud',
  'Trey Research',
  'VanArsdel Ltd',
  'Wingtip Toys',
  'Blue Yonder Airlines',
  'City Power & Light',
  'Consolidated Messenger',
  'First Up Consultants',
  'Lamna Healthcare Company',
  'Nod Publishers',
  'Southridge Video',
  'The Phone Company',
  'Bellows College',
  'School of Fine Art',
  'Best For You Organics Company',
  'Datum Corporation',
  'Liberty Delightful Sinful Bakery & Cafe',
];

const ENTITLEMENT_NAMES = [
  'Production',
  'Development',
  'Test',
  'Shared services',
  'Azure subscription 1',
  'Data platform',
];
const RESOURCE_GROUPS = [
  'rg-prod-web',
  'rg-prod-data',
  'rg-dev',
  'rg-shared-network',
  'rg-monitoring',
  'rg-backup',
  'rg-app',
];
const TAG_SETS = ['', '{"env":"prod"}', '{"env":"dev","owner":"it-ops"}', '{"costCenter":"4711","env":"prod"}', ''];

interface Meter {
  category: string;
  subCategory: string;
  name: string;
  meterType: string;
  unit: string;
  consumedService: string;
  resourceType: string;
  resourcePrefix: string;
  /** USD per unit. */
  unitPrice: number;
  /** Largest daily quantity. */
  maxQuantity: number;
  additionalInfo: string;
  serviceInfo1: string;
  pec: boolean;
}

const METERS: readonly Meter[] = [
  {
    category: 'Virtual Machines',
    subCategory: 'Dv3/DSv3 Series',
    name: 'D2 v3/D2s v3',
    meterType: '1 Compute Hour',
    unit: '1 Hour',
    consumedService: 'Microsoft.Compute',
    resourceType: 'virtualMachines',
    resourcePrefix: 'vm-web',
    unitPrice: 0.096,
    maxQuantity: 24,
    additionalInfo: '{"ImageType":"Canonical","ServiceType":"Standard_D2s_v3","VMName":null,"VCPUs":2}',
    serviceInfo1: '',
    pec: true,
  },
  {
    category: 'Virtual Machines',
    subCategory: 'Dsv5 Series',
    name: 'D4s v5',
    meterType: '1 Compute Hour',
    unit: '1 Hour',
    consumedService: 'Microsoft.Compute',
    resourceType: 'virtualMachines',
    resourcePrefix: 'vm-app',
    unitPrice: 0.192,
    maxQuantity: 24,
    additionalInfo: '{"ImageType":"Windows Server BYOL","ServiceType":"Standard_D4s_v5","VMName":null,"VCPUs":4}',
    serviceInfo1: '',
    pec: true,
  },
  {
    category: 'Storage',
    subCategory: 'Standard SSD Managed Disks',
    name: 'E10 LRS Disk',
    meterType: '1/Month',
    unit: '1/Month',
    consumedService: 'Microsoft.Compute',
    resourceType: 'disks',
    resourcePrefix: 'disk-os',
    unitPrice: 9.6,
    maxQuantity: 0.032258,
    additionalInfo: '',
    serviceInfo1: '',
    pec: true,
  },
  {
    category: 'Storage',
    subCategory: 'Tiered Block Blob',
    name: 'Hot LRS Data Stored',
    meterType: '1 GB/Month',
    unit: '1 GB/Month',
    consumedService: 'Microsoft.Storage',
    resourceType: 'storageAccounts',
    resourcePrefix: 'stdata',
    unitPrice: 0.0184,
    maxQuantity: 250,
    additionalInfo: '',
    serviceInfo1: '',
    pec: true,
  },
  {
    category: 'Storage',
    subCategory: 'Tiered Block Blob',
    name: 'Hot Read Operations',
    meterType: '10K',
    unit: '10K',
    consumedService: 'Microsoft.Storage',
    resourceType: 'storageAccounts',
    resourcePrefix: 'stdata',
    unitPrice: 0.0044,
    maxQuantity: 90,
    additionalInfo: '',
    serviceInfo1: '',
    pec: true,
  },
  {
    category: 'Bandwidth',
    subCategory: 'Rtn Preference: MGN',
    name: 'Standard Data Transfer Out',
    meterType: '1 GB',
    unit: '1 GB',
    consumedService: 'Microsoft.Network',
    resourceType: 'publicIPAddresses',
    resourcePrefix: 'pip',
    unitPrice: 0.087,
    maxQuantity: 40,
    additionalInfo: '',
    serviceInfo1: '',
    pec: false,
  },
  {
    category: 'SQL Database',
    subCategory: 'General Purpose - Compute Gen5',
    name: 'vCore',
    meterType: '1 Hour',
    unit: '1 Hour',
    consumedService: 'Microsoft.Sql',
    resourceType: 'servers',
    resourcePrefix: 'sql',
    unitPrice: 0.2525,
    maxQuantity: 48,
    additionalInfo: '{"vCores":2,"ServiceTier":"GeneralPurpose"}',
    serviceInfo1: '',
    pec: true,
  },
  {
    category: 'Azure App Service',
    subCategory: 'Premium v3 Plan',
    name: 'P1 v3 App',
    meterType: '1 Hour',
    unit: '1 Hour',
    consumedService: 'Microsoft.Web',
    resourceType: 'serverfarms',
    resourcePrefix: 'asp',
    unitPrice: 0.2,
    maxQuantity: 24,
    additionalInfo: '',
    serviceInfo1: '',
    pec: true,
  },
  {
    category: 'Virtual Network',
    subCategory: 'IP Addresses',
    name: 'Standard IPv4 Static Public IP',
    meterType: '1 Hour',
    unit: '1 Hour',
    consumedService: 'Microsoft.Network',
    resourceType: 'publicIPAddresses',
    resourcePrefix: 'pip',
    unitPrice: 0.005,
    maxQuantity: 24,
    additionalInfo: '',
    serviceInfo1: '',
    pec: false,
  },
  {
    category: 'Log Analytics',
    subCategory: '',
    name: 'Analytics Logs Data Ingestion',
    meterType: '1 GB',
    unit: '1 GB',
    consumedService: 'Microsoft.OperationalInsights',
    resourceType: 'workspaces',
    resourcePrefix: 'log',
    unitPrice: 2.3,
    maxQuantity: 12,
    additionalInfo: '',
    serviceInfo1: '',
    pec: true,
  },
  {
    category: 'Key Vault',
    subCategory: '',
    name: 'Operations',
    meterType: '10K',
    unit: '10K',
    consumedService: 'Microsoft.KeyVault',
    resourceType: 'vaults',
    resourcePrefix: 'kv',
    unitPrice: 0.03,
    maxQuantity: 30,
    additionalInfo: '',
    serviceInfo1: '',
    pec: true,
  },
  {
    category: 'Azure Cosmos DB',
    subCategory: '',
    name: '100 RU/s',
    meterType: '1 Hour',
    unit: '1 Hour',
    consumedService: 'Microsoft.DocumentDB',
    resourceType: 'databaseAccounts',
    resourcePrefix: 'cosmos',
    unitPrice: 0.008,
    maxQuantity: 96,
    additionalInfo: '',
    serviceInfo1: '',
    pec: true,
  },
  {
    category: 'Load Balancer',
    subCategory: '',
    name: 'Standard Data Processed',
    meterType: '1 GB',
    unit: '1 GB',
    consumedService: 'Microsoft.Network',
    resourceType: 'loadBalancers',
    resourcePrefix: 'lb',
    unitPrice: 0.005,
    maxQuantity: 500,
    additionalInfo: '',
    serviceInfo1: '',
    pec: false,
  },
  {
    category: 'Backup',
    subCategory: '',
    name: 'Azure VM Protected Instances',
    meterType: '1/Month',
    unit: '1/Month',
    consumedService: 'Microsoft.RecoveryServices',
    resourceType: 'vaults',
    resourcePrefix: 'rsv',
    unitPrice: 10,
    maxQuantity: 0.032258,
    additionalInfo: '',
    serviceInfo1: '',
    pec: true,
  },
  {
    category: 'Azure Monitor',
    subCategory: '',
    name: 'Standard Web Test',
    meterType: '1 Test Execution',
    unit: '1 Test Execution',
    consumedService: 'microsoft.insights',
    resourceType: 'webtests',
    resourcePrefix: 'webtest',
    unitPrice: 0.0012,
    maxQuantity: 2880,
    additionalInfo: '',
    serviceInfo1: '',
    pec: true,
  },
  {
    category: 'Functions',
    subCategory: '',
    name: 'Standard Execution Time',
    meterType: '10 GB Seconds',
    unit: '10 GB Seconds',
    consumedService: 'Microsoft.Web',
    resourceType: 'sites',
    resourcePrefix: 'func',
    unitPrice: 0.00016,
    maxQuantity: 5000,
    additionalInfo: '',
    serviceInfo1: 'Flex Consumption',
    pec: true,
  },
];

const REGIONS = [
  { meterRegion: 'US East', location: 'eastus' },
  { meterRegion: 'US West 2', location: 'westus2' },
  { meterRegion: 'EU West', location: 'westeurope' },
  { meterRegion: 'EU North', location: 'northeurope' },
  { meterRegion: 'UK South', location: 'uksouth' },
  { meterRegion: 'AU East', location: 'australiaeast' },
];

/** A row source: JSON text around the four values that vary per row (in column order). */
export interface RowTemplate {
  /** The row's values (markers in place of the four that vary): what aggregated rows are built from. */
  row: Readonly<Record<UsageColumn, string | number>>;
  beforeUsageDate: string;
  beforeQuantity: string;
  beforeBillingTotal: string;
  beforePricingTotal: string;
  tail: string;
  /** Effective unit price in pricing currency (USD). */
  effectiveUnitPrice: number;
  /** Pricing (USD) to billing currency. */
  exchangeRate: number;
  maxQuantity: number;
}

const MARK = {
  usageDate: '\u0001UsageDate\u0001',
  quantity: '\u0001Quantity\u0001',
  billingTotal: '\u0001BillingPreTaxTotal\u0001',
  pricingTotal: '\u0001PricingPreTaxTotal\u0001',
} as const;

function round6(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '')
    .slice(0, 24);
}

function monthBounds(billingMonth: string): { year: number; month: number; days: number } {
  const year = Number(billingMonth.slice(0, 4));
  const month = Number(billingMonth.slice(4, 6));
  const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
  return { year, month, days };
}

function isoDay(year: number, month: number, day: number): string {
  return new Date(Date.UTC(year, month - 1, day)).toISOString().replace('.000Z', 'Z');
}

/** Serialises one row with markers in place of the per-row values, and cuts it around them. */
function compileTemplate(
  row: Record<UsageColumn, string | number>,
  columns: readonly UsageColumn[],
  effectiveUnitPrice: number,
  exchangeRate: number,
  maxQuantity: number,
): RowTemplate {
  const projected: Record<string, string | number> = {};
  for (const column of columns) projected[column] = row[column];
  let text = JSON.stringify(projected);
  // Markers are control characters, which JSON.stringify escapes: find their escaped form.
  const escaped = (mark: string): string => JSON.stringify(mark).slice(1, -1);
  const cut = (mark: string, quoted: boolean): [string, string] => {
    const needle = quoted ? `"${escaped(mark)}"` : escaped(mark);
    const at = text.indexOf(needle);
    if (at < 0) throw new Error(`template marker ${mark} missing`);
    const head = text.slice(0, at);
    text = text.slice(at + needle.length);
    return [head, text];
  };
  const [beforeUsageDate] = cut(MARK.usageDate, false);
  const [beforeQuantity] = cut(MARK.quantity, true);
  const [beforeBillingTotal] = cut(MARK.billingTotal, true);
  const [beforePricingTotal, tail] = cut(MARK.pricingTotal, true);
  return {
    row,
    beforeUsageDate,
    beforeQuantity,
    beforeBillingTotal,
    beforePricingTotal,
    tail: `${tail}\n`,
    effectiveUnitPrice,
    exchangeRate,
    maxQuantity,
  };
}

/** The partner's customers, their Azure subscriptions and resources: the same for a seed and currency. */
export function buildTemplates(spec: UsageDataSpec): RowTemplate[] {
  const random = seededRandom('world', spec.seed, spec.currency);
  const columns = usageColumns(spec.attributeSet);
  const { year, month, days } = monthBounds(spec.billingMonth);
  const chargeStart = isoDay(year, month, 1);
  const chargeEnd = isoDay(year, month, days);
  const rate = EXCHANGE_RATES[spec.currency] ?? round6(0.5 + random() * 2);
  const countries = COUNTRIES[spec.currency] ?? ['US'];
  const meterIds = METERS.map(() => randomGuid(random));
  const products = METERS.map(() => ({ productId: `DZH318Z0${randomCode(random, 4)}`, skuId: randomCode(random, 4) }));
  const availabilityIds = METERS.map(() => `DZH318Z0${randomCode(random, 4)}`);
  const templates: RowTemplate[] = [];
  const customerCount = 24 + randomInt(random, 0, 8);
  for (let c = 0; c < customerCount; c++) {
    const baseName = pick(random, CUSTOMER_NAMES);
    const customerName = c < CUSTOMER_NAMES.length ? baseName : `${baseName} ${c}`;
    const customerId = randomGuid(random);
    const domain = `${slug(customerName)}${randomInt(random, 1, 99)}.onmicrosoft.com`;
    const country = pick(random, countries);
    const subscriptionId = randomGuid(random);
    const entitlements = randomInt(random, 1, 3);
    for (let e = 0; e < entitlements; e++) {
      const entitlementId = randomGuid(random);
      const entitlementDescription = pick(random, ENTITLEMENT_NAMES);
      const region = pick(random, REGIONS);
      const resources = randomInt(random, 3, 9);
      for (let r = 0; r < resources; r++) {
        const meterIndex = randomInt(random, 0, METERS.length - 1);
        const meter = METERS[meterIndex]!;
        const product = products[meterIndex]!;
        const resourceGroup = pick(random, RESOURCE_GROUPS);
        const resourceName = `${meter.resourcePrefix}-${randomCode(random, 5).toLowerCase()}`;
        const provider = meter.consumedService.replace(/^microsoft\./i, 'Microsoft.');
        const pecPercentage = meter.pec && random() < 0.8 ? 15 : 0;
        const savingsPlan = meter.category === 'Virtual Machines' && random() < 0.2;
        const effectiveUnitPrice = round6(meter.unitPrice * (1 - pecPercentage / 100));
        const row: Record<UsageColumn, string | number> = {
          PartnerId: spec.partnerTenantId,
          PartnerName: 'Contoso Cloud Partner Ltd',
          CustomerId: customerId,
          CustomerName: customerName,
          CustomerDomainName: domain,
          CustomerCountry: country,
          MpnId: '6543210',
          Tier2MpnId: '',
          InvoiceNumber: spec.invoiceId ?? '',
          ProductId: product.productId,
          SkuId: product.skuId,
          AvailabilityId: availabilityIds[meterIndex]!,
          SkuName: meter.name,
          ProductName: [meter.category, meter.subCategory].filter((part) => part !== '').join(' '),
          PublisherName: 'Microsoft',
          PublisherId: '',
          SubscriptionDescription: 'Azure plan',
          SubscriptionId: subscriptionId,
          ChargeStartDate: chargeStart,
          ChargeEndDate: chargeEnd,
          UsageDate: MARK.usageDate,
          MeterType: meter.meterType,
          MeterCategory: meter.category,
          MeterId: meterIds[meterIndex]!,
          MeterSubCategory: meter.subCategory,
          MeterName: meter.name,
          MeterRegion: region.meterRegion,
          Unit: meter.unit,
          ResourceLocation: region.location,
          ConsumedService: meter.consumedService,
          ResourceGroup: resourceGroup,
          ResourceURI: `/subscriptions/${entitlementId}/resourceGroups/${resourceGroup}/providers/${provider}/${meter.resourceType}/${resourceName}`,
          ChargeType: 'new',
          UnitPrice: meter.unitPrice,
          Quantity: MARK.quantity,
          UnitType: meter.unit,
          BillingPreTaxTotal: MARK.billingTotal,
          BillingCurrency: spec.currency,
          PricingPreTaxTotal: MARK.pricingTotal,
          PricingCurrency: 'USD',
          ServiceInfo1: meter.serviceInfo1,
          ServiceInfo2: '',
          Tags: pick(random, TAG_SETS),
          AdditionalInfo: meter.additionalInfo,
          EffectiveUnitPrice: effectiveUnitPrice,
          PCToBCExchangeRate: rate,
          EntitlementId: entitlementId,
          EntitlementDescription: entitlementDescription,
          PartnerEarnedCreditPercentage: pecPercentage,
          CreditPercentage: 0,
          CreditType: 'Credit Not Applied',
          BenefitOrderID: savingsPlan ? randomGuid(random) : '',
          BenefitID: savingsPlan ? randomGuid(random) : '',
          BenefitType: savingsPlan ? 'SavingsPlan' : '',
        };
        templates.push(compileTemplate(row, columns, effectiveUnitPrice, rate, meter.maxQuantity));
      }
    }
  }
  return templates;
}

/** The values of one usage row: which template, which day, and the three amounts. */
export interface UsageRowDraw {
  /** Index into the templates of `buildTemplates(spec)`. */
  template: number;
  /** Index of the usage day (0 = the first of the month). */
  day: number;
  quantity: number;
  pricingTotal: number;
  billingTotal: number;
}

/**
 * The rows of one blob as values, in file order: what `usageBlobChunks` writes and billed aggregated usage
 * sums (so both datasets of an invoice agree). The same spec and index give the same rows.
 */
export function* usageRowDraws(
  spec: UsageDataSpec,
  blobIndex: number,
  templates: readonly RowTemplate[],
): Generator<UsageRowDraw> {
  const random = seededRandom('rows', spec.seed, spec.currency, spec.billingMonth, spec.usageDays, blobIndex);
  let template = 0;
  let runLeft = 0;
  for (let row = 0; row < spec.rowsPerBlob; row++) {
    // Rows of one resource come in short runs of consecutive days, as in sorted partner data.
    if (runLeft === 0) {
      template = Math.floor(random() * templates.length);
      runLeft = 1 + Math.floor(random() * 6);
    }
    runLeft--;
    const source = templates[template]!;
    const quantity = round6(random() * source.maxQuantity) || 0.000001;
    const pricingTotal = round6(quantity * source.effectiveUnitPrice);
    const billingTotal = round6(pricingTotal * source.exchangeRate);
    yield { template, day: Math.floor(random() * spec.usageDays), quantity, pricingTotal, billingTotal };
  }
}

/**
 * The JSON lines of one blob, as chunks of about `chunkBytes` characters (UTF-8 Buffers).
 * Rows are cut from templates, so hundreds of MiB come out quickly; the same spec and index give the same bytes.
 */
export function* usageBlobChunks(spec: UsageDataSpec, blobIndex: number, chunkBytes = 256 * 1024): Generator<Buffer> {
  const templates = buildTemplates(spec);
  const { year, month } = monthBounds(spec.billingMonth);
  const usageDates: string[] = [];
  for (let day = 1; day <= spec.usageDays; day++) usageDates.push(isoDay(year, month, day));
  let text = '';
  for (const draw of usageRowDraws(spec, blobIndex, templates)) {
    const template = templates[draw.template]!;
    text +=
      template.beforeUsageDate +
      usageDates[draw.day]! +
      template.beforeQuantity +
      draw.quantity +
      template.beforeBillingTotal +
      draw.billingTotal +
      template.beforePricingTotal +
      draw.pricingTotal +
      template.tail;
    if (text.length >= chunkBytes) {
      yield Buffer.from(text, 'utf8');
      text = '';
    }
  }
  if (text.length > 0) yield Buffer.from(text, 'utf8');
}

/** Days of usage present in an export of `billingMonth` taken at `now` (the current month is still in progress). */
export function usageDaysAt(billingMonth: string, now: Date): number {
  const { year, month, days } = monthBounds(billingMonth);
  if (now.getUTCFullYear() === year && now.getUTCMonth() + 1 === month) return Math.max(1, now.getUTCDate() - 1);
  return days;
}

/** `YYYYMM` of a billing period at `now`: current = this UTC month, last = the previous one. */
export function billingMonthOf(billingPeriod: 'current' | 'last', now: Date): string {
  const shift = billingPeriod === 'current' ? 0 : 1;
  const date = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - shift, 1));
  return `${date.getUTCFullYear()}${String(date.getUTCMonth() + 1).padStart(2, '0')}`;
}
