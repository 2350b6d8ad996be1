import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** A whole HTTP(S) reply, read to its end. */
export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export function asRecord(value: unknown, what = 'value'): Record<string, unknown> {
  assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value), `${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

export function asString(value: unknown, what = 'value'): string {
  assert.equal(typeof value, 'string', `${what} is not a string`);
  return value as string;
}

export function json(reply: Reply): Record<string, unknown> {
  return asRecord(JSON.parse(reply.body.toString('utf8')), 'response body');
}

/** One request with no connection reuse (`agent: false`); `ca` trusts a test CA for HTTPS. */
export function send(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; ca?: string | undefined } = {},
): Promise<Reply> {
  const target = new URL(url);
  const make = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = make(
      target,
      {
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        agent: false,
        ...(target.protocol === 'https:' ? { ca: options.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}
