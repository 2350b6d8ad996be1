import { type CuratedColumn, type CuratedSchema, datasetFamily } from './curatedSchemas';
import { FOCUS_1_2_COLUMNS, FOCUS_1_2_SHARED, focusExpression } from './focus12';

/**
 * The SQL of one file's conversion, as pure functions of the schema (the DuckDB adapter, convertFile.ts, runs it).
 *
 * Pass 1 reads the raw gzip JSON lines ONCE, with an explicit column list (every column VARCHAR: nothing is sniffed,
 * and a number Microsoft writes as `1` in one file and `0.92` in the next reads the same), casts every value to
 * its documented type with TRY_CAST, and keeps the result as staging rows (a Parquet file in the temporary folder,
 * or a DuckDB temporary table: convertFile's `staging` option): the typed row, its ordinal in the file, the raw
 * text of the money columns (for the exact totals) and the reason it is rejected, if it is. The curated and FOCUS
 * parts, the counts and the totals are then read from the staging rows (`staging` below is the SQL relation), so
 * the JSON is parsed once whatever is written from it.
 *
 * A row is rejected, with a reason, when:
 * - `noDatasetColumn`: none of the dataset's columns is in the line: not JSON, not a JSON object, or keys renamed
 *   (DuckDB's reader turns a line it cannot parse into a row of nulls; blank lines are skipped, not counted);
 * - `invalidValue:{Column}`: a non-empty value does not convert to the column's type (a date, a decimal, or a
 *   JSON column that is not valid JSON). The first such column of the line is named.
 * Empty strings become NULL and are never a rejection.
 *
 * Numbers: DuckDB's JSON reader parses an unquoted JSON number as a double and hands a VARCHAR column its shortest
 * text, so every number of up to 15 significant digits (Graph's amounts have about 6 decimals) arrives exactly as
 * written (`1.50` as `1.5`, `1e-7` as `1e-07`: the same values); a number with more digits than a double holds is
 * rounded by the reader, before this code sees it. Quoted numbers (`"12.5"`) arrive as written.
 */

/** A SQL string literal. */
export function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** A quoted SQL identifier. */
export function sqlName(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The typed value of a raw VARCHAR column (NULL for an empty string or a value that does not convert). */
function typedValue(column: CuratedColumn): string {
  const raw = `nullif(${sqlName(column.name)}, '')`;
  switch (column.kind) {
    case 'json':
      return `CASE WHEN json_valid(${raw}) THEN ${raw} END`;
    case 'date':
    case 'decimal':
    case 'money':
      return `TRY_CAST(${raw} AS ${column.sqlType})`;
    default:
      return raw;
  }
}

/** Prefix of the staging columns that hold the raw text of a money column. */
export const RAW_PREFIX = '__raw_';

/** The read_json call of a raw file: explicit columns, all VARCHAR, newline-delimited, gzip. */
export function readRawSql(schema: CuratedSchema, inputPath: string): string {
  const columns = schema.columns.map((column) => `${sqlName(column.name)}: 'VARCHAR'`).join(', ');
  return `read_json(${sqlString(inputPath)}, format = 'newline_delimited', compression = 'gzip', columns = {${columns}}, ignore_errors = true)`;
}

/** Pass 1: raw file → staging rows (typed columns, `__row`, raw money text, `__reject`). */
export function stagingSelectSql(schema: CuratedSchema, inputPath: string): string {
  const typed = schema.columns.map((column) => `${typedValue(column)} AS ${sqlName(`__t_${column.name}`)}`);
  const checks = schema.columns
    .filter((column) => column.kind !== 'text' && column.kind !== 'guid')
    .map(
      (column) =>
        `WHEN nullif(${sqlName(column.name)}, '') IS NOT NULL AND ${sqlName(`__t_${column.name}`)} IS NULL THEN ${sqlString(`invalidValue:${column.name}`)}`,
    );
  const allNull = schema.columns.map((column) => `${sqlName(column.name)} IS NULL`).join(' AND ');
  const reject = `CASE WHEN ${allNull} THEN 'noDatasetColumn' ${checks.join(' ')} END`;
  const out = [
    ...schema.columns.map((column) => `${sqlName(`__t_${column.name}`)} AS ${sqlName(column.name)}`),
    ...schema.totalColumns.map((name) => `${sqlName(name)} AS ${sqlName(`${RAW_PREFIX}${name}`)}`),
    '__row',
    `${reject} AS __reject`,
  ];
  return `SELECT ${out.join(', ')} FROM (SELECT *, ${typed.join(', ')}, row_number() OVER () AS __row FROM ${readRawSql(schema, inputPath)})`;
}

/** The staging table, when pass 1 keeps its rows in DuckDB (spilled to the temporary folder beyond the memory limit). */
export const STAGING_TABLE = 'curation_staging';

/** The curated rows of the staging table: the documented columns, in documented order, rejected rows left out. */
export function curatedSelectSql(schema: CuratedSchema, staging: string): string {
  const columns = schema.columns.map((column) => sqlName(column.name)).join(', ');
  return `SELECT ${columns} FROM ${staging} WHERE __reject IS NULL`;
}

/** Constants a FOCUS row needs that the raw row does not hold. */
export interface FocusContext {
  dataset: string;
  /** `YYYY-MM`: BillingPeriodStart is its first day 00:00Z, BillingPeriodEnd the next month's (exclusive). */
  billingMonth: string;
  runId: string | null;
  fileName: string | null;
}

/** Tables the FOCUS select joins (created by the adapter from the pinned open-data CSVs). */
export const LOOKUP_TABLES = {
  pricingUnits: 'focus_pricing_units',
  regions: 'focus_regions',
  services: 'focus_services',
  servicesByType: 'focus_services_by_type',
} as const;

/** CREATE statements of the lookup tables from the pinned open-data files (explicit columns, one row per key). */
export function lookupTablesSql(openDataDir: string): string[] {
  const csv = (file: string, columns: string[]): string =>
    `read_csv(${sqlString(`${openDataDir}/${file}`)}, header = true, columns = {${columns.map((c) => `${sqlName(c)}: 'VARCHAR'`).join(', ')}})`;
  const services = csv('Services.csv', [
    'ConsumedService',
    'ResourceType',
    'ServiceName',
    'ServiceCategory',
    'ServiceSubcategory',
    'PublisherName',
    'PublisherType',
    'Environment',
    'ServiceModel',
  ]);
  return [
    `CREATE TEMP TABLE ${LOOKUP_TABLES.pricingUnits} AS SELECT UnitOfMeasure AS unit_key, first(DistinctUnits ORDER BY DistinctUnits) AS unit, CAST(first(PricingBlockSize ORDER BY DistinctUnits) AS ${'DECIMAL(38, 12)'}) AS block_size FROM ${csv('PricingUnits.csv', ['UnitOfMeasure', 'AccountTypes', 'PricingBlockSize', 'DistinctUnits'])} GROUP BY UnitOfMeasure`,
    `CREATE TEMP TABLE ${LOOKUP_TABLES.regions} AS SELECT lower(OriginalValue) AS region_key, first(RegionId ORDER BY RegionId) AS region_id, first(RegionName ORDER BY RegionId) AS region_name FROM ${csv('Regions.csv', ['OriginalValue', 'RegionId', 'RegionName'])} GROUP BY lower(OriginalValue)`,
    `CREATE TEMP TABLE ${LOOKUP_TABLES.services} AS SELECT lower(coalesce(ConsumedService, '')) AS service_key, lower(ResourceType) AS type_key, first(ServiceName ORDER BY ServiceName) AS name, first(ServiceCategory ORDER BY ServiceName) AS category, first(ServiceSubcategory ORDER BY ServiceName) AS subcategory, first(ServiceModel ORDER BY ServiceName) AS model FROM ${services} GROUP BY ALL`,
    // By resource type alone (the basic attribute set has no ConsumedService): only types that name one service.
    `CREATE TEMP TABLE ${LOOKUP_TABLES.servicesByType} AS SELECT type_key, first(name) AS name, first(category) AS category, first(subcategory) AS subcategory, first(model) AS model FROM ${LOOKUP_TABLES.services} GROUP BY type_key HAVING count(DISTINCT name) = 1`,
  ];
}

/** Resource type id parsed from ResourceURI: `microsoft.compute/virtualmachines` (nested types joined by `/`). */
const RESOURCE_TYPE_OF_URI = `lower(nullif(array_to_string(list_filter(string_split(regexp_extract(ResourceURI, '/providers/(.*)$', 1), '/'), lambda v, i: i = 1 OR i % 2 = 0), '/'), ''))`;

/**
 * The rows FOCUS is computed from: the converted staging rows with the full set's columns (those the attribute set
 * lacks as typed NULLs, so one mapping serves both sets), `__type` (usage) and `__is_tax` (reconciliation: each
 * line once as its charge, and again as its Tax row when TaxTotal is not 0, right after it).
 */
function focusSourceSql(schema: CuratedSchema, staging: string): string {
  const family = datasetFamily(schema.dataset);
  const present = new Set(schema.columns.map((column) => column.name));
  const missing = schema.fullColumns
    .filter((column) => !present.has(column.name))
    .map((column) => `CAST(NULL AS ${column.sqlType}) AS ${sqlName(column.name)}`);
  const extra =
    family === 'reconciliation'
      ? ['unnest(CASE WHEN coalesce(TaxTotal, 0) <> 0 THEN [false, true] ELSE [false] END) AS __is_tax']
      : ['false AS __is_tax'];
  const inner = `SELECT *, ${[...missing, ...extra].join(', ')} FROM ${staging} WHERE __reject IS NULL`;
  const typed = family === 'reconciliation' ? inner : `SELECT *, ${RESOURCE_TYPE_OF_URI} AS __type FROM (${inner})`;
  return FOCUS_1_2_SHARED[family].reduce(
    (relation, [name, expression]) => `SELECT *, ${expression} AS ${name} FROM (${relation}) s`,
    typed,
  );
}

/** Lookup keys of a row, as SQL over the FOCUS source row. */
function lookupKeys(schema: CuratedSchema): { unit: string; region: string | null; service: string | null } {
  if (datasetFamily(schema.dataset) === 'reconciliation') return { unit: 'UnitType', region: null, service: null };
  return {
    unit: 'coalesce(Unit, UnitType)',
    region: 'lower(coalesce(ResourceLocation, MeterRegion))',
    service: `lower(ConsumedService) || '|' || __type`,
  };
}

/**
 * The open-data entries a file's rows use, resolved once per file: a few dozen keys, whatever the rows. They go
 * into the FOCUS select as CASE expressions, not joins, so the select streams in file order within the memory
 * limit (a join under DuckDB's order preservation buffered the rows and ran out of memory at 256 MB).
 */
export interface FocusLookups {
  /** Unit of measure → [PricingUnit, PricingBlockSize]. */
  pricingUnits: Record<string, [string, string]>;
  /** lower(location) → [RegionId, RegionName]. */
  regions: Record<string, [string, string]>;
  /** `consumedservice|resourcetype` → [ServiceName, ServiceCategory, ServiceSubcategory, ServiceModel]. */
  services: Record<string, [string, string, string, string]>;
  /** resource type → the same, for types that name one service. */
  servicesByType: Record<string, [string, string, string, string]>;
}

/** The table of a file's lookup keys (fileKeysSql), read by lookupQueriesSql and conversionWarningsSql. */
export const FILE_KEYS_TABLE = 'focus_file_keys';

/**
 * One read of the FOCUS source rows for everything the lookups and the warnings need: each distinct combination of
 * lookup keys (and, reconciliation, whether Total differs from Subtotal + TaxTotal) with its number of rows. A file
 * has a few dozen combinations whatever its rows.
 */
export function fileKeysSql(schema: CuratedSchema, staging: string): string {
  const keys = lookupKeys(schema);
  const mismatch =
    datasetFamily(schema.dataset) === 'reconciliation'
      ? 'NOT __is_tax AND Total IS DISTINCT FROM coalesce(Subtotal, 0) + coalesce(TaxTotal, 0)'
      : 'false';
  const columns = [
    `${keys.unit} AS unit_key`,
    `${keys.region ?? 'CAST(NULL AS VARCHAR)'} AS region_key`,
    `${keys.service ?? 'CAST(NULL AS VARCHAR)'} AS service_key`,
    `${keys.service === null ? 'CAST(NULL AS VARCHAR)' : '__type'} AS type_key`,
    `${mismatch} AS total_mismatch`,
  ];
  return `CREATE TEMP TABLE ${FILE_KEYS_TABLE} AS SELECT ${columns.join(', ')}, count(*) AS n FROM (${focusSourceSql(schema, staging)}) GROUP BY ALL`;
}

/**
 * Queries that resolve a file's lookup keys (each row: key, then the values of FocusLookups' tuple), from the table
 * fileKeysSql creates.
 */
export function lookupQueriesSql(schema: CuratedSchema): Record<keyof FocusLookups, string | null> {
  const keys = lookupKeys(schema);
  const distinct = (key: string): string =>
    `(SELECT DISTINCT ${key} AS k FROM ${FILE_KEYS_TABLE} WHERE ${key} IS NOT NULL)`;
  const service = 'name, category, subcategory, model';
  return {
    pricingUnits: `SELECT k, l.unit, CAST(l.block_size AS VARCHAR) FROM ${distinct('unit_key')} JOIN ${LOOKUP_TABLES.pricingUnits} l ON l.unit_key = k ORDER BY k`,
    regions:
      keys.region === null
        ? null
        : `SELECT k, l.region_id, l.region_name FROM ${distinct('region_key')} JOIN ${LOOKUP_TABLES.regions} l ON l.region_key = k ORDER BY k`,
    services:
      keys.service === null
        ? null
        : `SELECT k, ${service} FROM ${distinct('service_key')} JOIN ${LOOKUP_TABLES.services} l ON l.service_key || '|' || l.type_key = k ORDER BY k`,
    servicesByType:
      keys.service === null
        ? null
        : `SELECT k, ${service} FROM ${distinct('type_key')} JOIN ${LOOKUP_TABLES.servicesByType} l ON l.type_key = k ORDER BY k`,
  };
}

/** `CASE key WHEN … THEN … END` over a lookup's entries (NULL when it has none). */
function caseOf(
  key: string | null,
  entries: Record<string, readonly string[]>,
  index: number,
  sqlType: string,
): string {
  const whens = Object.keys(entries)
    .sort()
    .map((k) => `WHEN ${sqlString(k)} THEN CAST(${sqlString(entries[k]?.[index] ?? '')} AS ${sqlType})`);
  if (key === null || whens.length === 0) return `CAST(NULL AS ${sqlType})`;
  // Each value is cast once, as a constant: a cast of the CASE's text result ran per row (a text-to-DECIMAL
  // parse per row made x_PricingBlockSize the costliest FOCUS column).
  return `CASE ${key} ${whens.join(' ')} END`;
}

/** The FOCUS rows of a staging file, in file order (reconciliation: a line's Tax row right after its charge row). */
export function focusSelectSql(
  schema: CuratedSchema,
  staging: string,
  context: FocusContext,
  lookups: FocusLookups,
): string {
  const family = datasetFamily(schema.dataset);
  const keys = lookupKeys(schema);
  const lookupColumns = [
    `${caseOf(keys.unit, lookups.pricingUnits, 0, 'VARCHAR')} AS __pu_unit`,
    `${caseOf(keys.unit, lookups.pricingUnits, 1, 'DECIMAL(38, 12)')} AS __pu_block_size`,
    `${caseOf(keys.region, lookups.regions, 0, 'VARCHAR')} AS __rg_region_id`,
    `${caseOf(keys.region, lookups.regions, 1, 'VARCHAR')} AS __rg_region_name`,
    ...['name', 'category', 'subcategory', 'model'].flatMap((field, index) => [
      `${caseOf(keys.service, lookups.services, index, 'VARCHAR')} AS __sv_${field}`,
      `${caseOf(keys.service === null ? null : '__type', lookups.servicesByType, index, 'VARCHAR')} AS __svt_${field}`,
    ]),
  ];
  const [year, month] = context.billingMonth.split('-').map(Number) as [number, number];
  const start = `${year}-${String(month).padStart(2, '0')}-01 00:00:00+00`;
  const next =
    month === 12 ? `${year + 1}-01-01 00:00:00+00` : `${year}-${String(month + 1).padStart(2, '0')}-01 00:00:00+00`;
  const nullable = (value: string | null): string => (value === null ? 'CAST(NULL AS VARCHAR)' : sqlString(value));
  const constants = [
    `CAST(${sqlString(start)} AS TIMESTAMP WITH TIME ZONE) AS billing_period_start`,
    `CAST(${sqlString(next)} AS TIMESTAMP WITH TIME ZONE) AS billing_period_end`,
    `${sqlString(context.dataset)} AS dataset`,
    `${nullable(context.runId)} AS run_id`,
    `${nullable(context.fileName)} AS file_name`,
  ].join(', ');
  const columns = FOCUS_1_2_COLUMNS.map((entry) => `${focusExpression(entry, family)} AS ${sqlName(entry.name)}`);
  const source = `SELECT *, ${lookupColumns.join(', ')} FROM (${focusSourceSql(schema, staging)})`;
  // The constants are one row; a cross join with it keeps the rows' order.
  return `SELECT ${columns.join(', ')} FROM (${source}) s, (SELECT ${constants}) p`;
}

/**
 * Counts of converted rows the FOCUS mapping could only fill with a fallback, and (reconciliation) of lines whose
 * Total is not Subtotal + TaxTotal. Not rejections: the rows are written; the counts are for the manifest.
 */
export function conversionWarningsSql(schema: CuratedSchema, lookups: FocusLookups): string {
  const keys = lookupKeys(schema);
  const known = (entries: Record<string, unknown>): string =>
    `[${Object.keys(entries)
      .sort()
      .map((key) => sqlString(key))
      .join(', ')}]::VARCHAR[]`;
  // Rows, from the key combinations of fileKeysSql and their row counts.
  const rowsWhere = (condition: string): string => `CAST(coalesce(sum(n) FILTER (WHERE ${condition}), 0) AS BIGINT)`;
  const counts = [
    `${rowsWhere(`unit_key IS NOT NULL AND NOT list_contains(${known(lookups.pricingUnits)}, unit_key)`)} AS pricingUnitNotInOpenData`,
  ];
  if (keys.service !== null) {
    counts.push(
      `${rowsWhere(`NOT list_contains(${known(lookups.services)}, coalesce(service_key, '')) AND NOT list_contains(${known(lookups.servicesByType)}, coalesce(type_key, ''))`)} AS serviceNotInOpenData`,
    );
  }
  if (datasetFamily(schema.dataset) === 'reconciliation') {
    counts.push(`${rowsWhere('total_mismatch')} AS totalIsNotSubtotalPlusTax`);
  }
  return `SELECT ${counts.join(', ')} FROM ${FILE_KEYS_TABLE}`;
}
