// The baseline for bench/http.ts: a bare Fastify server that answers 202 with a small JSON
// body without storing anything, with the same body handling as the gateway (raw stream read
// to the end). Reports its port to the parent over IPC.
import Fastify from 'fastify';

const app = Fastify();
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
let seq = 0;
app.post('/v1/streams/:stream/messages', async (req, reply) => {
  for await (const _ of req.body ?? []);
  seq++;
  return reply.code(202).send({ id: `bare-${seq}`, stream: req.params.stream, seq });
});
await app.listen({ host: '127.0.0.1', port: 0 });
process.send?.(app.server.address().port);
