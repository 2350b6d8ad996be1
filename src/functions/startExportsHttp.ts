import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import type * as Zod from 'zod';
import type * as Config from '../config';
import { FunctionNames } from '../names';
import type * as StartCore from '../pipeline/startExports';
import type { StartRequest } from '../pipeline/startExports';
import { depsFor, errorResponse, lazy, problem } from './invocation';

const ACCEPTED =
  'Accepted body (all optional): {"currencies":["USD","EUR"],"billingPeriods":["current","last"],"attributeSet":"full"|"basic","force":true|false}';

const config = lazy(() => require('../config') as typeof Config);
const core = lazy(() => require('../pipeline/startExports') as typeof StartCore);

const bodySchema = lazy(() => {
  const { z } = require('zod') as typeof Zod;
  const { ATTRIBUTE_SETS, BILLING_PERIODS } = config();
  return z
    .object({
      currencies: z.union([z.array(z.string()), z.string()]).optional(),
      billingPeriods: z.union([z.array(z.enum(BILLING_PERIODS)), z.enum(BILLING_PERIODS)]).optional(),
      attributeSet: z.enum(ATTRIBUTE_SETS).optional(),
      force: z.boolean().optional(),
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
  if (problems.length > 0) return { problem: `${problems.join('; ')}. ${ACCEPTED}` };
  const billingPeriods =
    body.billingPeriods === undefined
      ? undefined
      : [...new Set(Array.isArray(body.billingPeriods) ? body.billingPeriods : [body.billingPeriods])];
  if (billingPeriods !== undefined && billingPeriods.length === 0) {
    return { problem: `billingPeriods is empty. ${ACCEPTED}` };
  }
  return {
    request: { trigger: 'manual', currencies, billingPeriods, attributeSet: body.attributeSet, force: body.force },
  };
}

/** POST /api/exports (function key): starts exports now; 202 with the run ids and their status URLs. */
export async function startExportsHttp(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const parsed = parseStartBody(await request.text());
  if ('problem' in parsed) return problem(400, 'Invalid request body', parsed.problem, 'REQUEST_INVALID');
  try {
    const deps = depsFor(context);
    const runs = await core().startExports(parsed.request, deps);
    await deps.telemetry.flush();
    const base = new URL(request.url);
    const statusUrl = (runId: string) => `${base.origin}/api/exports/runs/${runId}`;
    return {
      status: 202,
      headers: runs.length === 1 && runs[0] !== undefined ? { location: statusUrl(runs[0].runId) } : {},
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
