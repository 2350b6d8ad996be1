/**
 * A small HTTPS proxy in front of the partner billing emulator (its own throw-away certificate, made the
 * same way as the emulator's). It records every SAS token served to the app, and can tamper with the
 * manifests on the way, to play a hostile or broken Graph.
 */
import { createServer, request as httpsRequest, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createEmulatorCertificate } from '../../src/emulator/certificate';

export interface GraphProxyOptions {
  /** The emulator's base URL, e.g. https://127.0.0.1:PORT/v1.0. */
  targetBaseUrl: string;
  /** PEM of the CA the emulator's certificate is signed by. */
  targetCaPem: string;
  /** Rewrites each manifest (inline under resourceLocation, or the body of GET /manifests/{id}). */
  tamperManifest?: (manifest: Record<string, unknown>) => Record<string, unknown>;
}

export interface GraphProxy {
  /** What GRAPH_BASE_URL gets. */
  baseUrl: string;
  /** What GRAPH_CA_CERT_FILE gets. */
  caCertPath: string;
  /** Every sasToken of every manifest the proxy passed on. */
  sasTokens: string[];
  stop(): Promise<void>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export async function startGraphProxy(options: GraphProxyOptions): Promise<GraphProxy> {
  const target = new URL(options.targetBaseUrl);
  const certificate = await createEmulatorCertificate();
  const sasTokens: string[] = [];
  let origin = '';

  const rewriteManifest = (manifest: Record<string, unknown>): Record<string, unknown> => {
    if (typeof manifest['sasToken'] === 'string') sasTokens.push(manifest['sasToken']);
    return options.tamperManifest === undefined ? manifest : options.tamperManifest(manifest);
  };

  const server: Server = createServer(
    { key: certificate.serverKeyPem, cert: certificate.serverCertPem },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const headers = { ...req.headers, host: target.host };
        const upstream = httpsRequest(
          {
            host: target.hostname,
            port: target.port,
            method: req.method,
            path: req.url,
            headers,
            ca: options.targetCaPem,
          },
          (answer) => {
            const body: Buffer[] = [];
            answer.on('data', (chunk: Buffer) => body.push(chunk));
            answer.on('end', () => {
              let text = Buffer.concat(body).toString('utf8').split(target.origin).join(origin);
              if (text !== '' && (answer.headers['content-type'] ?? '').includes('json')) {
                try {
                  const json: unknown = JSON.parse(text);
                  if (isRecord(json) && isRecord(json['resourceLocation'])) {
                    text = JSON.stringify({ ...json, resourceLocation: rewriteManifest(json['resourceLocation']) });
                  } else if (isRecord(json) && 'rootDirectory' in json) {
                    text = JSON.stringify(rewriteManifest(json));
                  }
                } catch {
                  // Not JSON after all: pass it on as it is.
                }
              }
              const out: Record<string, string> = {};
              for (const [key, value] of Object.entries(answer.headers)) {
                if (typeof value === 'string' && key !== 'content-length')
                  out[key] = value.split(target.origin).join(origin);
              }
              out['content-length'] = String(Buffer.byteLength(text));
              res.writeHead(answer.statusCode ?? 502, out);
              res.end(text);
            });
          },
        );
        upstream.on('error', (error) => {
          res.writeHead(502, { 'content-type': 'text/plain' });
          res.end(`proxy: ${error.message}`);
        });
        upstream.end(Buffer.concat(chunks));
      });
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  let stopping: Promise<void> | undefined;
  return {
    baseUrl: `${origin}${target.pathname.replace(/\/+$/, '')}`,
    caCertPath: certificate.caCertPath,
    sasTokens,
    stop() {
      stopping ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await certificate.dispose();
      })();
      return stopping;
    },
  };
}
