import costsRaw from './costsRawColumns.json';

/** The Kusto column types `Costs_raw` uses. */
export type KustoType = 'string' | 'real' | 'datetime' | 'bool' | 'int' | 'long' | 'decimal' | 'dynamic';

/** One column of a FinOps hub's `Costs_raw` table (pinned copy: costsRawColumns.json, with its source and licence). */
export interface CostsRawColumn {
  name: string;
  type: KustoType;
  /** The toolkit's comment: which FOCUS or provider version brought the column. */
  note: string;
}

/** Where the pinned column list comes from (repository, commit, file, licence). */
export const COSTS_RAW_SOURCE: Readonly<Record<string, string>> = costsRaw.source;

/** `Costs_raw` in table order; `Costs_raw_mapping` maps each from the Parquet column of the same (case-sensitive) name. */
export const COSTS_RAW_COLUMNS: readonly CostsRawColumn[] = costsRaw.columns.map((c) => ({
  name: c.name,
  type: c.type as KustoType,
  note: c.note,
}));

/** What the hub would do with a Parquet file of these columns. */
export interface CostsRawCheck {
  /** Columns `Costs_raw_mapping` does not name: the hub drops them at ingestion. */
  dropped: Array<{ name: string; reason: string }>;
  /** Columns the hub keeps, whose Parquet type is not one that is known to load into the Kusto column's type. */
  typeMismatches: Array<{ name: string; type: string; expected: KustoType; reason: string }>;
  /** `Costs_raw` columns the file does not have (null in the hub; the hub's transform fills some of them). */
  notProvided: string[];
}

/**
 * Parquet / DuckDB type families that load into each Kusto type as they are, or by a conversion Data Explorer
 * documents: DECIMAL (any physical type) into `real` is in the "Parquet type conversions" table of
 * https://learn.microsoft.com/kusto/management/parquet-mapping, so FOCUS money written as DECIMAL lands in the hub's
 * `real` columns (as a double, which is the hub's own choice of type).
 */
const COMPATIBLE: Record<KustoType, RegExp> = {
  string: /^(VARCHAR|STRING|TEXT|CHAR|BPCHAR|UTF8|BYTE_ARRAY|JSON|UUID|ENUM)$/,
  real: /^(DOUBLE|FLOAT|FLOAT4|FLOAT8|REAL|DECIMAL|NUMERIC)$/,
  datetime:
    /^(TIMESTAMP|TIMESTAMP WITH TIME ZONE|TIMESTAMPTZ|TIMESTAMP_S|TIMESTAMP_MS|TIMESTAMP_NS|TIMESTAMP_MILLIS|TIMESTAMP_MICROS|DATETIME|DATE)$/,
  bool: /^(BOOLEAN|BOOL)$/,
  int: /^(INTEGER|INT|INT4|INT32|SMALLINT|INT16|TINYINT|INT8)$/,
  long: /^(BIGINT|INT64|LONG|INTEGER|INT|INT4|INT32|SMALLINT|INT16|TINYINT|INT8)$/,
  decimal: /^(DECIMAL|NUMERIC)$/,
  dynamic: /^(JSON|VARCHAR|STRING|UTF8)$/,
};

/** `DECIMAL(18,6)` → `DECIMAL`; upper case, single spaces. */
function family(type: string): string {
  return type
    .trim()
    .toUpperCase()
    .replace(/\(.*\)$/, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * Checks a Parquet schema (column names and Parquet or DuckDB type names) against the hub's `Costs_raw` table and
 * `Costs_raw_mapping`: which columns the hub would drop (names are matched case-sensitively, as the mapping does),
 * which kept columns have a type that is not known to load into the column's Kusto type (see COMPATIBLE), and which
 * `Costs_raw` columns the file leaves empty.
 */
export function checkAgainstCostsRaw(columns: ReadonlyArray<{ name: string; type: string }>): CostsRawCheck {
  const byName = new Map(COSTS_RAW_COLUMNS.map((c) => [c.name, c]));
  const byLowerName = new Map(COSTS_RAW_COLUMNS.map((c) => [c.name.toLowerCase(), c]));
  const result: CostsRawCheck = { dropped: [], typeMismatches: [], notProvided: [] };
  const provided = new Set<string>();
  for (const column of columns) {
    const target = byName.get(column.name);
    if (target === undefined) {
      const near = byLowerName.get(column.name.toLowerCase());
      result.dropped.push({
        name: column.name,
        reason:
          near === undefined
            ? 'not a Costs_raw column'
            : `not a Costs_raw column as written; the mapping is case-sensitive and names it ${near.name}`,
      });
      continue;
    }
    provided.add(target.name);
    const got = family(column.type);
    if (!COMPATIBLE[target.type].test(got)) {
      result.typeMismatches.push({
        name: column.name,
        type: column.type,
        expected: target.type,
        reason: `${column.type} does not load into a Kusto ${target.type} column as is`,
      });
    }
  }
  result.notProvided = COSTS_RAW_COLUMNS.filter((c) => !provided.has(c.name)).map((c) => c.name);
  return result;
}
