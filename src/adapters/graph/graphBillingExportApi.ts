import type { TokenCredential } from '@azure/identity';
import {
  AuthenticationHandler,
  AuthenticationHandlerOptions,
  Client,
  type Context,
  GraphClientError,
  HTTPMessageHandler,
  type Middleware,
  RedirectHandler,
  ResponseType,
  TelemetryHandler,
} from '@microsoft/microsoft-graph-client';
import { Agent } from 'undici';
import type { AttributeSet, BillingPeriod } from '../../config';
import { type ErrorCode, ExportError } from '../../errors';
import type { BillingExportApi, ExportRequest, OperationState, StartedExport } from '../../pipeline/ports';
import { redact, safeUrl } from '../../redact';
import { credentialError } from './credentialError';
import { parseManifest, parseOperationBody } from './operationParser';
import { parseRetryAfter } from './retryAfter';

/** Hosts of Microsoft Graph (global and national clouds); a Graph token is only ever sent to these outside emulator mode. */
export const GRAPH_HOSTS: ReadonlySet<string> = new Set([
  'graph.microsoft.com',
  'canary.graph.microsoft.com',
  'graph.microsoft.us',
  'dod-graph.microsoft.us',
  'graph.microsoft.de',
  'microsoftgraph.chinacloudapi.cn',
]);

/** What the client needs. */
/** How long one Graph call may take before it is abandoned: Graph answers the export calls in seconds. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

export interface GraphBillingExportApiOptions {
  /** Graph root, e.g. https://graph.microsoft.com/v1.0 (or the emulator's loopback URL). */
  baseUrl: string;
  credential: TokenCredential;
  /** Emulator mode: loopback Graph and loopback blob sources accepted. */
  emulator: boolean;
  /** Extra CA certificate (PEM) to trust for the Graph endpoint: the emulator's self-signed one. */
  caCertPem?: string | undefined;
  /** Waits up to this many seconds in-process on 429/503/504 before handing the retry to the queue. */
  maxInlineRetrySeconds?: number | undefined;
  /** In-process retries of throttled or unavailable calls. */
  maxInlineRetries?: number | undefined;
  /** A Graph call that has not answered after this long is abandoned (and retried like a network error). */
  requestTimeoutMs?: number | undefined;
  /** Sleep, replaceable in tests. */
  sleep?: ((ms: number) => Promise<void>) | undefined;
  /** Called for every status Graph returns that this version does not know (logged as a warning by the caller). */
  onUnknownStatus?: ((status: string, operationUrl: string) => void) | undefined;
}

/** The unbilled usage export action (the other datasets' paths come from src/datasets.ts). */
const EXPORT_PATHS = { unbilledUsage: '/reports/partners/billing/usage/unbilled/export' } as const;

const RETRYABLE_STATUSES = new Set([429, 500, 502, 503, 504]);
const PERMISSION_HINT =
  'The calling identity needs the Microsoft Graph application permission PartnerBilling.Read.All (admin consent granted), ' +
  'and it must belong to the CSP partner tenant (the managed identity when the subscription is in that tenant, ' +
  'otherwise an app registration in the partner tenant configured through AZURE_TENANT_ID/AZURE_CLIENT_ID). See docs/deploy.md.';

/**
 * Microsoft Graph partner billing client on @microsoft/microsoft-graph-client. Uses RAW responses to read
 * `Location` and `Retry-After`, and maps every failure into an ExportError that says whether to retry.
 */
export class GraphBillingExportApi implements BillingExportApi {
  private readonly client: Client;
  private readonly base: URL;
  private readonly options: GraphBillingExportApiOptions;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly scopes: string[];

  constructor(options: GraphBillingExportApiOptions) {
    this.options = options;
    this.base = new URL(options.baseUrl.replace(/\/+$/, ''));
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    if (!options.emulator && !GRAPH_HOSTS.has(this.base.hostname.toLowerCase())) {
      throw new ExportError(
        'GRAPH_HOST_REFUSED',
        `GRAPH_BASE_URL host ${this.base.host} is not a Microsoft Graph host; a Graph token is only sent to ${[...GRAPH_HOSTS].join(', ')} (or to a loopback emulator).`,
      );
    }
    this.scopes = [`${this.base.origin}/.default`];
    // Our own retry loop (below) replaces the library's RetryHandler, so long waits go back to the queue. Each call
    // gets its token first (see accessToken), so a credential failure is classified before the library wraps it.
    const auth = new AuthenticationHandler({ getAccessToken: () => this.accessToken() });
    const redirect = new RedirectHandler();
    const telemetry = new TelemetryHandler();
    auth.setNext(redirect);
    redirect.setNext(telemetry);
    telemetry.setNext(new NetworkFailureHandler());
    const fetchOptions =
      options.caCertPem === undefined
        ? undefined
        : ({ dispatcher: new Agent({ connect: { ca: options.caCertPem } }) } as unknown as RequestInit);
    this.client = Client.initWithMiddleware({
      middleware: auth,
      ...(options.emulator ? { customHosts: new Set([this.base.hostname]) } : {}),
      ...(fetchOptions === undefined ? {} : { fetchOptions }),
    });
  }

  async startUnbilledExport(request: {
    currencyCode: string;
    billingPeriod: BillingPeriod;
    attributeSet: AttributeSet;
  }): Promise<StartedExport> {
    return this.startExport({
      dataset: 'unbilledUsage',
      path: EXPORT_PATHS.unbilledUsage,
      body: {
        currencyCode: request.currencyCode,
        billingPeriod: request.billingPeriod,
        attributeSet: request.attributeSet,
      },
    });
  }

  /** Starts the export of any dataset: POST {root}{path} with the JSON body, then the Location of the operation. */
  async startExport(request: ExportRequest): Promise<StartedExport> {
    if (!/^\/reports\/partners\/billing\/[A-Za-z]+\/[A-Za-z]+\/export$/.test(request.path)) {
      throw new ExportError(
        'GRAPH_PROTOCOL',
        `Refusing to POST to "${request.path}": not a partner billing export action (/reports/partners/billing/{usage|reconciliation|aggregatedUsage}/{billed|unbilled}/export).`,
      );
    }
    const url = `${this.base.href.replace(/\/+$/, '')}${request.path}`;
    const response = await this.call('POST', url, request.body);
    if (response.status !== 202) {
      throw new ExportError(
        'GRAPH_PROTOCOL',
        `Graph answered ${response.status} to the ${request.dataset} export POST; 202 Accepted with a Location was expected.`,
        { status: response.status },
      );
    }
    const location = response.headers.get('location');
    if (location === null || location.trim() === '') {
      throw new ExportError('GRAPH_PROTOCOL', 'Graph accepted the export (202) but sent no Location header.', {
        status: 202,
        retryable: true,
      });
    }
    const operationUrl = this.checkSameHost(new URL(location.trim(), url).href, 'Location');
    return { operationUrl, retryAfterSeconds: parseRetryAfter(response.headers.get('retry-after')) };
  }

  async getOperation(operationUrl: string): Promise<OperationState> {
    const url = this.checkSameHost(operationUrl, 'operation URL');
    const response = await this.call('GET', url);
    const body = await readJson(response, 'operation');
    const parsed = parseOperationBody(body);
    switch (parsed.kind) {
      case 'running':
        if (parsed.unknownStatus) this.options.onUnknownStatus?.(parsed.status, safeUrl(url));
        return {
          kind: 'running',
          status: parsed.status,
          retryAfterSeconds: parseRetryAfter(response.headers.get('retry-after')),
          unknownStatus: parsed.unknownStatus,
        };
      case 'failed':
        return { kind: 'failed', status: parsed.status, code: parsed.code, message: redact(parsed.message) };
      case 'succeeded': {
        let manifestBody = parsed.inlineManifest;
        if (manifestBody === undefined && parsed.manifestLink !== undefined) {
          const link = this.checkSameHost(new URL(parsed.manifestLink, url).href, 'manifest link');
          manifestBody = await readJson(await this.call('GET', link), 'manifest');
        }
        return {
          kind: 'succeeded',
          status: parsed.status,
          manifest: parseManifest(manifestBody, { emulator: this.options.emulator }),
        };
      }
    }
  }

  /** Refuses to send a token anywhere but the configured Graph host. */
  private checkSameHost(url: string, what: string): string {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ExportError('GRAPH_PROTOCOL', `Graph sent a ${what} that is not a URL.`);
    }
    if (parsed.protocol !== 'https:' || parsed.host.toLowerCase() !== this.base.host.toLowerCase()) {
      throw new ExportError(
        'GRAPH_HOST_REFUSED',
        `Refusing to follow the ${what} ${safeUrl(url)}: it is not on the configured Graph host ${this.base.host} over https.`,
      );
    }
    return parsed.href;
  }

  /**
   * A token for Graph, or an ExportError saying why there is none: GRAPH_CREDENTIAL (no credential is configured,
   * or Microsoft Entra ID refused it: retrying cannot help) or GRAPH_NETWORK (the token endpoint did not answer).
   */
  private async accessToken(): Promise<string> {
    let token: Awaited<ReturnType<TokenCredential['getToken']>>;
    try {
      token = await this.options.credential.getToken(this.scopes);
    } catch (error) {
      throw credentialError(error, 'Microsoft Graph', { config: 'GRAPH_CREDENTIAL', transient: 'GRAPH_NETWORK' });
    }
    if (token === null) {
      throw credentialError(new Error('the credential returned no token'), 'Microsoft Graph', {
        config: 'GRAPH_CREDENTIAL',
        transient: 'GRAPH_NETWORK',
      });
    }
    return token.token;
  }

  /** One Graph call with bounded in-process retries of 429/5xx; returns the raw fetch Response when ok. */
  private async call(method: 'GET' | 'POST', url: string, body?: unknown): Promise<Response> {
    const maxRetries = this.options.maxInlineRetries ?? 2;
    const maxWait = this.options.maxInlineRetrySeconds ?? 10;
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        const token = await this.accessToken();
        // A call that never answers must not hold the handler (and its batch) for ever: abandon it, retry it.
        const signal = AbortSignal.timeout(this.options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
        const request = this.client
          .api(url)
          .responseType(ResponseType.RAW)
          .option('signal', signal)
          .middlewareOptions([new AuthenticationHandlerOptions({ getAccessToken: async () => token })]);
        response = (method === 'POST' ? await request.post(body) : await request.get()) as Response;
      } catch (error) {
        if (error instanceof ExportError && !error.retryable) throw error;
        if (attempt < maxRetries) {
          await this.sleep(1000 * 2 ** attempt);
          continue;
        }
        if (error instanceof ExportError) throw error;
        const cause = error instanceof GraphClientError && error.customError !== undefined ? error.customError : error;
        throw new ExportError(
          'GRAPH_NETWORK',
          `Could not reach Microsoft Graph at ${this.base.host} (GRAPH_BASE_URL ${safeUrl(this.base.href)}): ${method} ${safeUrl(url)} failed ${maxRetries + 1} times: ${redact(networkFailure(cause))}. Check GRAPH_BASE_URL (unset means https://graph.microsoft.com/v1.0; a loopback URL must be a running partner billing emulator) and the outbound network access.`,
          { retryable: true, cause },
        );
      }
      if (response.ok) return response;
      const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
      if (RETRYABLE_STATUSES.has(response.status) && attempt < maxRetries) {
        const wait = retryAfter ?? 2 ** attempt;
        if (wait <= maxWait) {
          await response.body?.cancel().catch(() => undefined);
          await this.sleep(wait * 1000);
          continue;
        }
      }
      throw await toError(response, method, url, retryAfter);
    }
  }
}

/**
 * The library's fetch step, keeping the reason of a failed fetch: the library turns it into a bare "fetch failed"
 * otherwise (its own errors pass through it unchanged, with the original in `customError`).
 */
class NetworkFailureHandler implements Middleware {
  private readonly fetch = new HTTPMessageHandler();

  async execute(context: Context): Promise<void> {
    try {
      await this.fetch.execute(context);
    } catch (error) {
      const wrapped = new GraphClientError(error instanceof Error ? error.message : String(error));
      wrapped.customError = error;
      throw wrapped;
    }
  }
}

/** "fetch failed: connect ECONNREFUSED 127.0.0.1:1", from an error and its causes. */
export function networkFailure(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth++) {
    const text = current instanceof Error ? current.message : String(current);
    if (text !== '' && !parts.includes(text)) parts.push(text);
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(': ') || 'no answer';
}

async function readJson(response: Response, what: string): Promise<unknown> {
  const textBody = await response.text();
  try {
    return JSON.parse(textBody) as unknown;
  } catch {
    throw new ExportError('GRAPH_PROTOCOL', `The Graph ${what} response is not JSON.`, {
      status: response.status,
      retryable: true,
    });
  }
}

/** Maps a failed Graph response into a typed, redacted error. */
async function toError(
  response: Response,
  method: string,
  url: string,
  retryAfterSeconds: number | undefined,
): Promise<ExportError> {
  let graphCode: string | undefined;
  let graphMessage: string | undefined;
  let requestId = response.headers.get('request-id') ?? undefined;
  try {
    const body = JSON.parse(await response.text()) as unknown;
    if (typeof body === 'object' && body !== null && 'error' in body) {
      const error = (body as { error: unknown }).error;
      if (typeof error === 'object' && error !== null) {
        const e = error as Record<string, unknown>;
        if (typeof e.code === 'string') graphCode = e.code;
        if (typeof e.message === 'string') graphMessage = e.message;
        const inner = e.innerError;
        if (requestId === undefined && typeof inner === 'object' && inner !== null) {
          const id = (inner as Record<string, unknown>)['request-id'];
          if (typeof id === 'string') requestId = id;
        }
      }
    }
  } catch {
    // Not a Graph error envelope: the status says enough.
  }
  const status = response.status;
  const detail = `${method} ${safeUrl(url)} answered ${status}${graphCode ? ` ${graphCode}` : ''}${
    graphMessage ? `: ${redact(graphMessage)}` : ''
  }${requestId ? ` (request-id ${requestId})` : ''}`;
  let code: ErrorCode;
  let retryable = false;
  let advice: string;
  if (status === 401) {
    code = 'GRAPH_UNAUTHORIZED';
    advice = PERMISSION_HINT;
  } else if (status === 403) {
    code = 'GRAPH_FORBIDDEN';
    advice = PERMISSION_HINT;
  } else if (status === 400) {
    code = 'GRAPH_BAD_REQUEST';
    advice =
      'Check EXPORT_CURRENCIES (the partner billing currencies), EXPORT_BILLING_PERIODS and EXPORT_ATTRIBUTE_SET.';
  } else if (status === 404 && method === 'POST') {
    code = 'GRAPH_NOT_FOUND';
    advice =
      'Graph has no such data: for a billed dataset check the invoice id (an invoice of this partner, issued September 2023 or later).';
  } else if (status === 404) {
    code = 'GRAPH_NOT_FOUND';
    advice = 'The operation or manifest no longer exists; the next run starts a new export.';
  } else if (status === 410) {
    code = 'GRAPH_GONE';
    advice = 'The operation expired; the next run starts a new export.';
  } else if (status === 429) {
    code = 'GRAPH_THROTTLED';
    retryable = true;
    advice = `Throttled by Graph; retried${retryAfterSeconds !== undefined ? ` after ${retryAfterSeconds} s` : ''}.`;
  } else if (status >= 500) {
    code = 'GRAPH_UNAVAILABLE';
    retryable = true;
    advice = 'Graph is unavailable; retried.';
  } else {
    code = 'GRAPH_PROTOCOL';
    advice = 'Unexpected answer from Graph.';
  }
  return new ExportError(code, `Microsoft Graph: ${detail}. ${advice}`, {
    status,
    retryable,
    retryAfterSeconds,
    graphErrorCode: graphCode,
    requestId,
  });
}
