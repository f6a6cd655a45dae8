import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { tempDir } from './tmp.js';

/** A self-signed certificate for 127.0.0.1 (openssl), valid one day: paths of its PEM files. */
export async function selfSignedCert(): Promise<{ dir: string; key: string; cert: string }> {
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
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  return { dir, key, cert };
}
