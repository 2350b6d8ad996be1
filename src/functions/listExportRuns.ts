import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { FunctionNames } from '../names';
import type * as ListCore from '../pipeline/listRuns';
import { depsFor, errorResponse, lazy } from './invocation';

const core = lazy(() => require('../pipeline/listRuns') as typeof ListCore);

/** GET /api/exports/runs[?since&until&status&currency&dataset&invoiceId&limit] and GET /api/exports/runs/{runId}: run history. */
export async function listExportRuns(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    const { getRunDetails, listRuns, parseRunQuery, publicRun } = core();
    const runId = request.params['runId'];
    const deps = depsFor(context);
    if (runId !== undefined && runId !== '') {
      return { status: 200, jsonBody: await getRunDetails(runId, deps) };
    }
    const query = parseRunQuery(Object.fromEntries(request.query.entries()));
    const runs = await listRuns(query, deps);
    return { status: 200, jsonBody: { runs: runs.map(publicRun) } };
  } catch (error) {
    return errorResponse(error, context);
  }
}

app.http(FunctionNames.listExportRuns, {
  methods: ['GET'],
  authLevel: 'function',
  route: 'exports/runs/{runId?}',
  handler: listExportRuns,
});
