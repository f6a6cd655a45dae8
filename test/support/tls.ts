import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { tempDir } from './tmp.js';

/**
 * A self-signed certificate for 127.0.0.1 (openssl), valid one day: paths of its PEM files.
 * `dnsNames` go into its subject alternative names too (the NATS client checks "localhost").
 */
export async function selfSignedCert(
  dnsNames: readonly string[] = [],
): Promise<{ dir: string; key: string; cert: string }> {
  const dir = await tempDir('ws-tls-');
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      `/CN=${dnsNames[0] ?? '127.0.0.1'}`,
      '-addext',
      `subjectAltName=${[...dnsNames.map((n) => `DNS:${n}`), 'IP:127.0.0.1'].join(',')}`,
    ],
    { stdio: 'ignore' },
  );
  return { dir, key, cert };
}
