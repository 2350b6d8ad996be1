/**
 * Checking KQL offline with Microsoft's Kusto language service (@kusto/language-service-next: the parser and
 * semantic analyzer of Kusto.Language, the one the portal's editors use), and collecting every KQL text the project
 * ships: the alert rules and workbook queries as deployed (from the committed snapshots, so with the values
 * alerts.bicep fills in), the files of infra/queries, and the KQL code blocks of docs/*.md and README.md.
 *
 * A query is analysed against a database that holds the tables of its scope: the Application Insights schema
 * (customEvents, requests, traces, …: the tables an alert rule or workbook scoped to the Application Insights
 * resource sees), or, for the Azure Data Explorer examples of docs/data.md, the external tables their own
 * `.create external table` commands declare. Analysis reports syntax errors, unknown tables, columns and functions,
 * and type errors; a text passes with no diagnostic of severity Error or Warning.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Json, readSnapshot, relativeName, root, snapshotsDir } from './support';

// ---------------------------------------------------------------------------------------------------------------
// The language service (a Bridge.NET build of Kusto.Language: it defines the global `Kusto`)
// ---------------------------------------------------------------------------------------------------------------

interface KustoList<T> {
  Count: number;
  getItem(index: number): T;
}
interface KustoDiagnostic {
  Code: string;
  Severity: string;
  Message: string;
  Start: number;
}
interface KustoSymbol {
  readonly __symbol: true;
}
interface KustoGlobals {
  WithDatabase(database: KustoSymbol): KustoGlobals;
}
interface KustoLanguage {
  GlobalState: { Default: KustoGlobals };
  KustoCode: { ParseAndAnalyze(text: string, globals: KustoGlobals): { GetDiagnostics(): KustoList<KustoDiagnostic> } };
  Symbols: {
    TableSymbol: { $ctor7: new (name: string, schema: string, description: string) => KustoSymbol };
    ExternalTableSymbol: { $ctor4: new (name: string, schema: string, description: string) => KustoSymbol };
    DatabaseSymbol: { $ctor2: new (name: string, alternateName: string | null, members: KustoSymbol[]) => KustoSymbol };
  };
}

let language: KustoLanguage | undefined;

function kusto(): KustoLanguage {
  if (language === undefined) {
    // Bridge.NET's runtime first, then the compiled Kusto.Language; both attach to the global object.
    require('@kusto/language-service-next/bridge.js');
    require('@kusto/language-service-next/Kusto.Language.Bridge.js');
    language = (globalThis as unknown as { Kusto: { Language: KustoLanguage } }).Kusto.Language;
  }
  return language;
}

// ---------------------------------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------------------------------

/** Columns every Application Insights table has (the classic, resource-scoped schema the alert rules query). */
const COMMON_COLUMNS =
  'timestamp:datetime, itemType:string, customDimensions:dynamic, operation_Name:string, operation_Id:string, ' +
  'operation_ParentId:string, operation_SyntheticSource:string, session_Id:string, user_Id:string, ' +
  'user_AuthenticatedId:string, user_AccountId:string, application_Version:string, client_Type:string, ' +
  'client_Model:string, client_OS:string, client_IP:string, client_City:string, client_StateOrProvince:string, ' +
  'client_CountryOrRegion:string, client_Browser:string, cloud_RoleName:string, cloud_RoleInstance:string, ' +
  'appId:string, appName:string, iKey:string, sdkVersion:string, itemId:string, itemCount:int';

/**
 * The Application Insights tables (Logs of an Application Insights resource; Azure Monitor's reference of the
 * Application Insights schema), with their own columns after the common ones. `success` is a string there
 * ("True"/"False"), unlike the workspace tables (AppRequests.Success is a bool).
 */
export const APPLICATION_INSIGHTS_TABLES: Record<string, string> = {
  customEvents: 'name:string, customMeasurements:dynamic',
  customMetrics:
    'name:string, value:real, valueCount:int, valueSum:real, valueMin:real, valueMax:real, valueStdDev:real',
  requests:
    'id:string, source:string, name:string, url:string, success:string, resultCode:string, duration:real, ' +
    'performanceBucket:string, customMeasurements:dynamic',
  dependencies:
    'id:string, target:string, type:string, name:string, data:string, success:string, resultCode:string, ' +
    'duration:real, performanceBucket:string, customMeasurements:dynamic',
  exceptions:
    'problemId:string, handledAt:string, type:string, message:string, assembly:string, method:string, ' +
    'outerType:string, outerMessage:string, outerAssembly:string, outerMethod:string, innermostType:string, ' +
    'innermostMessage:string, innermostAssembly:string, innermostMethod:string, severityLevel:int, ' +
    'details:dynamic, customMeasurements:dynamic',
  traces: 'message:string, severityLevel:int, customMeasurements:dynamic',
  availabilityResults:
    'id:string, name:string, location:string, success:string, message:string, size:real, duration:real, ' +
    'performanceBucket:string, customMeasurements:dynamic',
  pageViews: 'id:string, name:string, url:string, duration:real, performanceBucket:string, customMeasurements:dynamic',
  browserTimings:
    'name:string, url:string, networkDuration:real, sendDuration:real, receiveDuration:real, ' +
    'processingDuration:real, totalDuration:real, performanceBucket:string, customMeasurements:dynamic',
  performanceCounters: 'name:string, category:string, counter:string, instance:string, value:real',
};

export type Scope =
  | { kind: 'applicationInsights' }
  /** Azure Data Explorer, with external tables: name -> schema "(Column: type, ...)". */
  | { kind: 'dataExplorer'; externalTables: Record<string, string> };

const globalsCache = new Map<string, KustoGlobals>();

function globalsFor(scope: Scope): KustoGlobals {
  const key = JSON.stringify(scope);
  let globals = globalsCache.get(key);
  if (globals === undefined) {
    globals = makeGlobals(scope);
    globalsCache.set(key, globals);
  }
  return globals;
}

function makeGlobals(scope: Scope): KustoGlobals {
  const { GlobalState, Symbols } = kusto();
  const members =
    scope.kind === 'applicationInsights'
      ? Object.entries(APPLICATION_INSIGHTS_TABLES).map(
          ([name, columns]) => new Symbols.TableSymbol.$ctor7(name, `(${COMMON_COLUMNS}, ${columns})`, name),
        )
      : Object.entries(scope.externalTables).map(
          ([name, columns]) => new Symbols.ExternalTableSymbol.$ctor4(name, columns, name),
        );
  return GlobalState.Default.WithDatabase(new Symbols.DatabaseSymbol.$ctor2(scope.kind, null, members));
}

export interface KqlDiagnostic {
  code: string;
  severity: string;
  message: string;
  /** Line and column (1-based) in the text. */
  line: number;
  column: number;
}

/** Errors and warnings of the language service for one KQL text (a query, or a control command). */
export function analyseKql(text: string, scope: Scope): KqlDiagnostic[] {
  const list = kusto().KustoCode.ParseAndAnalyze(text, globalsFor(scope)).GetDiagnostics();
  const out: KqlDiagnostic[] = [];
  for (let i = 0; i < list.Count; i++) {
    const d = list.getItem(i);
    if (d.Severity !== 'Error' && d.Severity !== 'Warning') continue;
    const before = text.slice(0, d.Start).split('\n');
    out.push({
      code: d.Code,
      severity: d.Severity,
      message: d.Message,
      line: before.length,
      column: (before[before.length - 1]?.length ?? 0) + 1,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The texts
// ---------------------------------------------------------------------------------------------------------------

export interface KqlText {
  /** Where it comes from, for messages: "infra/queries/x.kql", "docs/data.md:515", "new-destination: rule …". */
  where: string;
  text: string;
  scope: Scope;
}

function asArray(value: Json | undefined): Json[] {
  return Array.isArray(value) ? value : [];
}

function field(value: Json | undefined, key: string): Json | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value[key] : undefined;
}

/** The alert rule queries and workbook queries of every committed snapshot (as deployed), identical ones once. */
export function deployedQueries(): KqlText[] {
  const seen = new Set<string>();
  const out: KqlText[] = [];
  const add = (where: string, text: Json | undefined): void => {
    if (typeof text !== 'string') throw new Error(`${where}: the query is not a resolved string`);
    if (seen.has(text)) return;
    seen.add(text);
    out.push({ where, text, scope: { kind: 'applicationInsights' } });
  };
  const cases = readdirSync(snapshotsDir)
    .filter((f) => f.endsWith('.snapshot.json'))
    .map((f) => f.replace(/\.snapshot\.json$/, ''))
    .sort();
  for (const name of cases) {
    for (const resource of readSnapshot(name).predictedResources) {
      const type = resource.type.toLowerCase();
      if (type === 'microsoft.insights/scheduledqueryrules') {
        for (const criterion of asArray(field(field(resource.properties ?? null, 'criteria'), 'allOf'))) {
          add(`${name}: alert rule ${resource.name}`, field(criterion, 'query'));
        }
      } else if (type === 'microsoft.insights/workbooks') {
        const data = JSON.parse(String(field(resource.properties ?? null, 'serializedData'))) as Json;
        for (const item of asArray(field(data, 'items'))) {
          const query = field(field(item, 'content'), 'query');
          if (query !== undefined) add(`${name}: workbook item ${String(field(item, 'name'))}`, query);
        }
      }
    }
  }
  return out;
}

/** The files of infra/queries (Application Insights scope). */
export function queryFiles(): KqlText[] {
  const dir = join(root, 'infra', 'queries');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.kql'))
    .sort()
    .map((f) => ({
      where: relativeName(join(dir, f)),
      text: readFileSync(join(dir, f), 'utf8'),
      scope: { kind: 'applicationInsights' } as const,
    }));
}

/** The external tables that `.create external table Name (Column: type, ...)` commands of a text declare. */
export function declaredExternalTables(text: string): Record<string, string> {
  const tables: Record<string, string> = {};
  for (const m of text.matchAll(/\.create(?:-or-alter)?\s+external\s+table\s+(\w+)\s*(\([^)]*\))/g)) {
    tables[m[1] ?? ''] = (m[2] ?? '').replace(/\s+/g, ' ');
  }
  return tables;
}

/**
 * The ```kusto and ```kql code blocks of the Markdown files, each paragraph (text between blank lines) one text,
 * as Kusto's query editors run the paragraph under the cursor. A block that uses external_table() or a control
 * command is an Azure Data Explorer example: it is checked against the external tables the file declares (its
 * `.create external table` commands); every other block against the Application Insights schema.
 */
export function markdownQueries(files: string[]): KqlText[] {
  const out: KqlText[] = [];
  for (const file of files) {
    const content = readFileSync(file, 'utf8');
    const externalTables = declaredExternalTables(content);
    const lines = content.split('\n');
    let block: { start: number; lines: string[] } | undefined;
    lines.forEach((line, index) => {
      if (block === undefined) {
        if (/^\s*```\s*(kusto|kql)\s*$/i.test(line)) block = { start: index + 2, lines: [] };
        return;
      }
      if (!/^\s*```\s*$/.test(line)) {
        block.lines.push(line);
        return;
      }
      const dataExplorer = block.lines.some((l) => /external_table\s*\(|^\s*\./.test(l));
      let paragraph: { start: number; lines: string[] } = { start: block.start, lines: [] };
      const flush = (): void => {
        if (paragraph.lines.some((l) => l.trim() !== '')) {
          out.push({
            where: `${relativeName(file)}:${paragraph.start}`,
            text: paragraph.lines.join('\n'),
            scope: dataExplorer ? { kind: 'dataExplorer', externalTables } : { kind: 'applicationInsights' },
          });
        }
      };
      block.lines.forEach((l, i) => {
        if (l.trim() === '') {
          flush();
          paragraph = { start: block!.start + i + 1, lines: [] };
        } else paragraph.lines.push(l);
      });
      flush();
      block = undefined;
    });
  }
  return out;
}

/** The Markdown files whose KQL blocks are checked: README.md and docs/*.md. */
export function markdownFiles(): string[] {
  const docs = join(root, 'docs');
  return [
    join(root, 'README.md'),
    ...readdirSync(docs)
      .filter((f) => f.endsWith('.md'))
      .sort()
      .map((f) => join(docs, f)),
  ];
}

/** Every KQL text the project ships. */
export function allKqlTexts(): KqlText[] {
  return [...deployedQueries(), ...queryFiles(), ...markdownQueries(markdownFiles())];
}
