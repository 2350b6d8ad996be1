import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';

/** A throw-away certificate authority and the emulator's server certificate signed by it. */
export interface EmulatorCertificate {
  /** PEM of the CA to trust (`--cacert`, `NODE_EXTRA_CA_CERTS`, `GRAPH_CA_CERT_FILE`). */
  caCertPem: string;
  /** The CA written to a temporary file. */
  caCertPath: string;
  /** Server certificate (valid for DNS localhost, IP 127.0.0.1 and ::1) and its private key. */
  serverCertPem: string;
  serverKeyPem: string;
  /** Removes the temporary folder of the CA file. */
  dispose(): Promise<void>;
}

const HOUR_MS = 60 * 60 * 1000;

/** Makes a fresh CA and a server certificate for the loopback names, and writes the CA to a temp file. */
export async function createEmulatorCertificate(): Promise<EmulatorCertificate> {
  // Tolerate a little clock skew between the processes that check the certificate.
  const notBeforeDate = new Date(Date.now() - HOUR_MS);
  const notAfterDate = new Date(Date.now() + 30 * 24 * HOUR_MS);
  const ca = await generate([{ name: 'commonName', value: 'csp-unbilled-export partner billing emulator CA' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const server = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  const folder = await mkdtemp(join(tmpdir(), 'csp-billing-emulator-'));
  const caCertPath = join(folder, 'emulator-ca.pem');
  await writeFile(caCertPath, ca.cert, { mode: 0o644 });
  return {
    caCertPem: ca.cert,
    caCertPath,
    serverCertPem: server.cert,
    serverKeyPem: server.private,
    dispose: () => rm(folder, { recursive: true, force: true }),
  };
}
