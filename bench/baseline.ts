/**
 * The bare Koa baseline: answers every request with one status, content type and body size and
 * does no other work, so a scenario's ratio shows what gatehouse's own work costs on this machine.
 * `GET /__bench?status=&size=&type=` sets what the next measurement gets.
 *
 *   node --import tsx bench/baseline.ts PORT
 */
import Koa from "koa";

let status = 200;
let type = "text/plain; charset=utf-8";
let body = Buffer.alloc(0);

const app = new Koa();
app.use((ctx) => {
  if (ctx.path === "/__bench") {
    status = Number(ctx.query["status"] ?? 200);
    type = String(ctx.query["type"] ?? "text/plain");
    body = Buffer.alloc(Number(ctx.query["size"] ?? 0), "x");
    ctx.body = "ok";
    return;
  }
  ctx.status = status;
  ctx.type = type;
  ctx.body = body;
});

const port = Number(process.argv[2] ?? 0);
const server = app.listen(port, "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === "object" && address ? address.port : port}\n`);
});
process.once("SIGTERM", () => server.close(() => process.exit(0)));
