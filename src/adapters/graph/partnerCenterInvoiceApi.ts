import type { TokenCredential } from '@azure/identity';
import { Agent } from 'undici';
import { type ErrorCode, ExportError } from '../../errors';
import type { PartnerInvoice, PartnerInvoiceSource } from '../../pipeline/invoiceDiscovery';
import { redact, safeUrl } from '../../redact';
import { credentialError } from './credentialError';
import { parseRetryAfter } from './retryAfter';

/** The token scope of the Partner Center API (never Graph's: each token goes to its own API only). */
export const PARTNER_CENTER_SCOPE = 'https://api.partnercenter.microsoft.com/.default';

/** Hosts of the Partner Center API; a Partner Center token is only ever sent to these outside emulator mode. */
export const PARTNER_CENTER_HOSTS: ReadonlySet<string> = new Set(['api.partnercenter.microsoft.com']);

export interface PartnerCenterInvoiceApiOptions {
  /** API root, e.g. https://api.partnercenter.microsoft.com/v1 (or the emulator's loopback URL). */
  baseUrl: string;
  /** Asked for PARTNER_CENTER_SCOPE only. */
  credential: TokenCredential;
  /** Emulator mode: a loopback root (the caller passes the fixed development credential). */
  emulator: boolean;
  /** Extra CA certificate (PEM) to trust: the emulator's self-signed one. */
  caCertPem?: string | undefined;
  /** Page size of the invoices list. */
  pageSize?: number | undefined;
  /** In-process retries of throttled or unavailable calls, and the longest wait for one. */
  maxInlineRetries?: number | undefined;
  maxInlineRetrySeconds?: number | undefined;
  sleep?: ((ms: number) => Promise<void>) | undefined;
}

const MAX_PAGES = 50;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The partner's invoices from the Partner Center invoices API (`GET {root}/invoices`, app-only credentials of
 * an app registered in Partner Center). Pages through `links.next`, never leaves the configured host.
 */
export class PartnerCenterInvoiceApi implements PartnerInvoiceSource {
  private readonly base: URL;
  private readonly options: PartnerCenterInvoiceApiOptions;
  private readonly dispatcher: Agent | undefined;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(options: PartnerCenterInvoiceApiOptions) {
    this.options = options;
    this.base = new URL(options.baseUrl.replace(/\/+$/, ''));
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    if (this.base.protocol !== 'https:') {
      throw new ExportError(
        'PARTNER_CENTER_FAILED',
        'PARTNER_CENTER_BASE_URL must use https: tokens go over TLS only.',
      );
    }
    if (!options.emulator && !PARTNER_CENTER_HOSTS.has(this.base.hostname.toLowerCase())) {
      throw new ExportError(
        'GRAPH_HOST_REFUSED',
        `PARTNER_CENTER_BASE_URL host ${this.base.host} is not the Partner Center API; a Partner Center token is only sent to ${[...PARTNER_CENTER_HOSTS].join(', ')} (or to a loopback emulator).`,
      );
    }
    this.dispatcher = options.caCertPem === undefined ? undefined : new Agent({ connect: { ca: options.caCertPem } });
  }

  async listInvoices(): Promise<PartnerInvoice[]> {
    const size = this.options.pageSize ?? 200;
    let url: string | undefined = `${this.base.href.replace(/\/+$/, '')}/invoices?size=${size}&offset=0`;
    const invoices: PartnerInvoice[] = [];
    for (let page = 0; url !== undefined && page < MAX_PAGES; page++) {
      const body = await this.get(url);
      if (!isRecord(body) || !Array.isArray(body['items'])) {
        throw new ExportError('PARTNER_CENTER_FAILED', 'The Partner Center invoices response has no "items" list.');
      }
      for (const item of body['items']) {
        const invoice = parseInvoice(item);
        if (invoice !== undefined) invoices.push(invoice);
      }
      url = this.nextUrl(body);
    }
    return invoices;
  }

  /** `links.next.uri` is relative to the API root (`/invoices?size=..&offset=..`); it must stay on the same host. */
  private nextUrl(body: Record<string, unknown>): string | undefined {
    const links = body['links'];
    const next = isRecord(links) ? links['next'] : undefined;
    const uri = isRecord(next) ? next['uri'] : undefined;
    if (typeof uri !== 'string' || uri === '') return undefined;
    const resolved = /^https:\/\//i.test(uri) ? new URL(uri) : new URL(`${this.base.href.replace(/\/+$/, '')}${uri}`);
    if (resolved.host.toLowerCase() !== this.base.host.toLowerCase() || resolved.protocol !== 'https:') {
      throw new ExportError(
        'GRAPH_HOST_REFUSED',
        `Refusing to follow the Partner Center next link ${safeUrl(resolved.href)}: not on ${this.base.host}.`,
      );
    }
    return resolved.href;
  }

  private async get(url: string): Promise<unknown> {
    const maxRetries = this.options.maxInlineRetries ?? 2;
    const maxWait = this.options.maxInlineRetrySeconds ?? 10;
    for (let attempt = 0; ; attempt++) {
      let token: Awaited<ReturnType<TokenCredential['getToken']>>;
      try {
        token = await this.options.credential.getToken(PARTNER_CENTER_SCOPE);
      } catch (error) {
        // Configuration (no credential, refused): terminal with the settings to set; a token endpoint that did not
        // answer: retried like an unreachable Partner Center.
        throw credentialError(error, 'the Partner Center API', {
          config: 'PARTNER_CENTER_FAILED',
          transient: 'PARTNER_CENTER_UNAVAILABLE',
        });
      }
      if (token === null) {
        throw new ExportError('PARTNER_CENTER_FAILED', 'No token for the Partner Center API could be obtained.');
      }
      let response: Response;
      try {
        response = await fetch(url, {
          headers: { Authorization: `Bearer ${token.token}`, Accept: 'application/json' },
          ...(this.dispatcher === undefined ? {} : ({ dispatcher: this.dispatcher } as object)),
        });
      } catch (error) {
        if (attempt < maxRetries) {
          await this.sleep(1000 * 2 ** attempt);
          continue;
        }
        throw new ExportError(
          'PARTNER_CENTER_UNAVAILABLE',
          `Could not reach the Partner Center API (GET ${safeUrl(url)}): ${redact(error instanceof Error ? error.message : String(error))}`,
          { retryable: true, cause: error },
        );
      }
      if (response.ok) {
        try {
          return JSON.parse(await response.text()) as unknown;
        } catch {
          throw new ExportError('PARTNER_CENTER_UNAVAILABLE', 'The Partner Center invoices response is not JSON.', {
            retryable: true,
          });
        }
      }
      const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
      const retryable = response.status === 429 || response.status >= 500;
      if (retryable && attempt < maxRetries && (retryAfter ?? 2 ** attempt) <= maxWait) {
        await response.body?.cancel().catch(() => undefined);
        await this.sleep((retryAfter ?? 2 ** attempt) * 1000);
        continue;
      }
      const text = redact((await response.text().catch(() => '')).slice(0, 300));
      const code: ErrorCode = retryable ? 'PARTNER_CENTER_UNAVAILABLE' : 'PARTNER_CENTER_FAILED';
      const advice =
        response.status === 401 || response.status === 403
          ? ' The app needs Partner Center API access: register it in Partner Center (Account settings > App management) and use app-only credentials of the partner tenant (see docs/deploy.md#datasets-and-invoice-discovery).'
          : '';
      throw new ExportError(
        code,
        `Partner Center: GET ${safeUrl(url)} answered ${response.status}${text ? `: ${text}` : ''}.${advice}`,
        { status: response.status, retryable, retryAfterSeconds: retryAfter },
      );
    }
  }
}

/** One item of the invoice collection; items without an id or a date are skipped. */
function parseInvoice(item: unknown): PartnerInvoice | undefined {
  if (!isRecord(item)) return undefined;
  const id = item['id'];
  const invoiceDate = item['invoiceDate'];
  if (typeof id !== 'string' || typeof invoiceDate !== 'string' || Number.isNaN(Date.parse(invoiceDate))) {
    return undefined;
  }
  const text = (name: string): string | undefined =>
    typeof item[name] === 'string' ? (item[name] as string) : undefined;
  return {
    id,
    invoiceDate,
    billingPeriodStartDate: text('billingPeriodStartDate'),
    currencyCode: text('currencyCode'),
    documentType: text('documentType'),
  };
}
