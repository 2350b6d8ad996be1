/** A valid body of `POST .../usage/unbilled/export`. */
export interface UnbilledExportRequest {
  currencyCode: string;
  billingPeriod: 'current' | 'last';
  attributeSet: 'full' | 'basic';
}

export type ParsedExportRequest = { ok: true; value: UnbilledExportRequest } | { ok: false; message: string };

const PARAMETERS = ['currencyCode', 'billingPeriod', 'attributeSet'];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Is this Content-Type JSON (`application/json`, with or without parameters)? */
export function isJsonContentType(contentType: string | undefined): boolean {
  return contentType?.split(';')[0]?.trim().toLowerCase() === 'application/json';
}

/**
 * Parses and validates the export body the way Graph's action binding does: JSON object, only the
 * action's parameters, `currencyCode` three letters, `billingPeriod` current|last, `attributeSet` full|basic
 * (optional, default full). Messages follow Graph's wording where it is known.
 */
export function parseExportRequest(contentType: string | undefined, body: string): ParsedExportRequest {
  const read = readActionBody(contentType, body, PARAMETERS);
  if (!read.ok) return read;
  const parsed = read.value;
  const { currencyCode, billingPeriod, attributeSet } = parsed;
  if (currencyCode === undefined || currencyCode === null) {
    return { ok: false, message: "The parameter 'currencyCode' is required for the operation 'export'." };
  }
  if (typeof currencyCode !== 'string' || !/^[A-Za-z]{3}$/.test(currencyCode)) {
    return {
      ok: false,
      message: `Invalid value for parameter 'currencyCode': ${JSON.stringify(currencyCode)}. Expected an ISO 4217 code of three letters, e.g. 'USD'.`,
    };
  }
  if (billingPeriod === undefined || billingPeriod === null) {
    return { ok: false, message: "The parameter 'billingPeriod' is required for the operation 'export'." };
  }
  if (billingPeriod !== 'current' && billingPeriod !== 'last') {
    return {
      ok: false,
      message: `Requested value ${JSON.stringify(billingPeriod)} was not found for parameter 'billingPeriod' (accepted: 'current', 'last').`,
    };
  }
  if (attributeSet !== undefined && attributeSet !== null && attributeSet !== 'full' && attributeSet !== 'basic') {
    return {
      ok: false,
      message: `Requested value ${JSON.stringify(attributeSet)} was not found for parameter 'attributeSet' (accepted: 'full', 'basic').`,
    };
  }
  return {
    ok: true,
    value: {
      currencyCode: currencyCode.toUpperCase(),
      billingPeriod,
      attributeSet: attributeSet === 'basic' ? 'basic' : 'full',
    },
  };
}

/** A valid body of `POST .../usage/billed/export` or `.../reconciliation/billed/export`. */
export interface BilledExportRequest {
  invoiceId: string;
  attributeSet: 'full' | 'basic';
}

export type ParsedBilledExportRequest = { ok: true; value: BilledExportRequest } | { ok: false; message: string };

const BILLED_PARAMETERS = ['invoiceId', 'attributeSet'];

/**
 * Parses a billed export body as Graph's action binding does: JSON object, only `invoiceId` (required,
 * a string) and `attributeSet` (optional, full|basic, default full).
 */
export function parseBilledExportRequest(contentType: string | undefined, body: string): ParsedBilledExportRequest {
  const read = readActionBody(contentType, body, BILLED_PARAMETERS);
  if (!read.ok) return read;
  const { invoiceId, attributeSet } = read.value;
  const invoice = checkInvoiceId(invoiceId);
  if (!invoice.ok) return invoice;
  if (attributeSet !== undefined && attributeSet !== null && attributeSet !== 'full' && attributeSet !== 'basic') {
    return {
      ok: false,
      message: `Requested value ${JSON.stringify(attributeSet)} was not found for parameter 'attributeSet' (accepted: 'full', 'basic').`,
    };
  }
  return { ok: true, value: { invoiceId: invoice.value, attributeSet: attributeSet === 'basic' ? 'basic' : 'full' } };
}

export type ParsedInvoiceOnlyExportRequest =
  | { ok: true; value: { invoiceId: string } }
  | { ok: false; message: string };

/**
 * Parses a billed aggregated usage export body: `invoiceId` only (Graph v1.0 and Microsoft.Graph 6.10.0 define no
 * other parameter, so an `attributeSet` is refused as any unknown parameter is).
 */
export function parseInvoiceOnlyExportRequest(
  contentType: string | undefined,
  body: string,
): ParsedInvoiceOnlyExportRequest {
  const read = readActionBody(contentType, body, ['invoiceId']);
  if (!read.ok) return read;
  const invoice = checkInvoiceId(read.value['invoiceId']);
  return invoice.ok ? { ok: true, value: { invoiceId: invoice.value } } : invoice;
}

function checkInvoiceId(invoiceId: unknown): { ok: true; value: string } | { ok: false; message: string } {
  if (invoiceId === undefined || invoiceId === null) {
    return { ok: false, message: "The parameter 'invoiceId' is required for the operation 'export'." };
  }
  if (typeof invoiceId !== 'string' || invoiceId.trim() === '') {
    return {
      ok: false,
      message: `Invalid value for parameter 'invoiceId': ${JSON.stringify(invoiceId)}. Expected an invoice id, e.g. 'G016907411'.`,
    };
  }
  return { ok: true, value: invoiceId.trim() };
}

/**
 * Reads an action body as Graph's binding does, before the action's own checks: a JSON content type, JSON, an
 * object, and only the action's parameters. Messages follow Graph's wording where it is known.
 */
function readActionBody(
  contentType: string | undefined,
  body: string,
  parameters: readonly string[],
): { ok: true; value: Record<string, unknown> } | { ok: false; message: string } {
  if (!isJsonContentType(contentType)) {
    return {
      ok: false,
      message: `Content-Type '${contentType ?? '(none)'}' is not supported for this action; send 'application/json'.`,
    };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return {
      ok: false,
      message:
        'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.',
    };
  }
  if (!isRecord(parsed)) {
    return { ok: false, message: 'The request payload must be a JSON object with the parameters of the action.' };
  }
  for (const key of Object.keys(parsed)) {
    if (!parameters.includes(key)) {
      return {
        ok: false,
        message: `The parameter '${key}' in the request payload is not a valid parameter for the operation 'export'.`,
      };
    }
  }
  return { ok: true, value: parsed };
}
