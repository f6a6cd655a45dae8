import { describe, expect, it } from 'vitest';
import { startGateway } from '../support/gateway.js';

describe('API documentation served locally', () => {
  it('serves the OpenAPI document and an HTML reference page that loads nothing from anywhere', async () => {
    const { gw } = await startGateway({
      targets: { t: { type: 'null' } },
      routes: { r: { streams: ['s'], target: 't' } },
    });
    try {
      const openapi = await gw.app.inject({ url: '/openapi.json' });
      expect(openapi.statusCode).toBe(200);
      const paths = Object.keys(openapi.json().paths as object);
      expect(paths).toContain('/v1/streams/{stream}/messages');
      const page = await gw.app.inject({ url: '/docs' });
      expect(page.statusCode).toBe(200);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      expect(page.headers['content-security-policy']).toBe(
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
      );
      for (const p of paths) expect(page.body).toContain(`<code>${p.replace(/&/g, '&#38;')}</code>`);
      expect(page.body).not.toMatch(/<script|<link|<img|style=|https?:\/\//i);
    } finally {
      await gw.close();
    }
  });
});
