import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import type * as Zod from 'zod';
import type * as Config from '../config';
import { FunctionNames } from '../names';
import type * as StartCore from '../pipeline/startExports';
import type { StartRequest } from '../pipeline/startExports';
import { depsFor, errorResponse, lazy, problem } from './invocation';

const ACCEPTED =
  'Accepted body (all optional): {"currencies":["USD","EUR"],"billingPeriods":["current","last"],"attributeSet":"full"|"basic","force":true|false,' +
  '"datasets":["unbilledUsage","unbilledReconciliation","billedUsage","billedReconciliation","billedAggregatedUsage"],"invoiceIds":["G000000001"]}';

const config = lazy(() => require('../config') as typeof Config);
const core = lazy(() => require('../pipeline/startExports') as typeof StartCore);

const bodySchema = lazy(() => {
  const { z } = require('zod') as typeof Zod;
  const { ATTRIBUTE_SETS, BILLING_PERIODS, DATASET_IDS } = config();
  return z
    .object({
      currencies: z.union([z.array(z.string()), z.string()]).optional(),
      billingPeriods: z.union([z.array(z.enum(BILLING_PERIODS)), z.enum(BILLING_PERIODS)]).optional(),
      attributeSet: z.enum(ATTRIBUTE_SETS).optional(),
      force: z.boolean().optional(),
      datasets: z.union([z.array(z.enum(DATASET_IDS)), z.enum(DATASET_IDS)]).optional(),
      invoiceIds: z.union([z.array(z.string()), z.string()]).optional(),
    })
    .strict();
});

/** Parses the optional JSON body of POST /api/exports; returns the request or the problem to answer. */
export function parseStartBody(text: string): { request: StartRequest } | { problem: string } {
  if (text.trim() === '') return { request: { trigger: 'manual' } };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { problem: `The body is not JSON. ${ACCEPTED}` };
  }
  const parsed = bodySchema().safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
    return { problem: `${issues}. ${ACCEPTED}` };
  }
  const body = parsed.data;
  const problems: string[] = [];
  const currencies =
    body.currencies === undefined
      ? undefined
      : config().parseCurrencies(
          Array.isArray(body.currencies) ? body.currencies.join(',') : body.currencies,
          'currencies',
          problems,
        );
  const invoiceIds =
    body.invoiceIds === undefined
      ? undefined
      : config().parseInvoiceIds(
          Array.isArray(body.invoiceIds) ? body.invoiceIds.join(',') : body.invoiceIds,
          'invoiceIds',
          problems,
        );
  if (problems.length > 0) return { problem: `${problems.join('; ')}. ${ACCEPTED}` };
  const datasets =
    body.datasets === undefined
      ? undefined
      : [...new Set(Array.isArray(body.datasets) ? body.datasets : [body.datasets])];
  if (datasets !== undefined && datasets.length === 0) return { problem: `datasets is empty. ${ACCEPTED}` };
  const billingPeriods =
    body.billingPeriods === undefined
      ? undefined
      : [...new Set(Array.isArray(body.billingPeriods) ? body.billingPeriods : [body.billingPeriods])];
  if (billingPeriods !== undefined && billingPeriods.length === 0) {
    return { problem: `billingPeriods is empty. ${ACCEPTED}` };
  }
  return {
    request: {
      trigger: 'manual',
      currencies,
      billingPeriods,
      attributeSet: body.attributeSet,
      force: body.force,
      ...(datasets === undefined ? {} : { datasets }),
      ...(invoiceIds === undefined ? {} : { invoiceIds }),
    },
  };
}

/** POST /api/exports (function key): starts exports now; 202 with the run ids and their status URLs. */
export async function startExportsHttp(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const parsed = parseStartBody(await request.text());
  if ('problem' in parsed) return problem(400, 'Invalid request body', parsed.problem, 'REQUEST_INVALID');
  try {
    const deps = depsFor(context);
    const { startExportFailures, startExports } = core();
    const runs = await startExports(parsed.request, deps);
    await deps.telemetry.flush();
    const base = new URL(request.url);
    const statusUrl = (runId: string) => (runId === '' ? null : `${base.origin}/api/exports/runs/${runId}`);
    if (runs.length > 0 && runs.every((run) => run.runId === '')) {
      // Nothing could even be recorded (storage refused or unavailable): say why, for every item.
      const failures = startExportFailures(runs);
      return problem(503, 'Exports could not be started', failures.join('; '), 'START_FAILED');
    }
    const first = runs[0];
    return {
      status: 202,
      headers:
        runs.length === 1 && first !== undefined && first.runId !== '' ? { location: `${statusUrl(first.runId)}` } : {},
      jsonBody: { runs: runs.map((run) => ({ ...run, statusUrl: statusUrl(run.runId) })) },
    };
  } catch (error) {
    return errorResponse(error, context);
  }
}

app.http(FunctionNames.startExportsHttp, {
  methods: ['POST'],
  authLevel: 'function',
  route: 'exports',
  handler: startExportsHttp,
});
