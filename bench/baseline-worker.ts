/**
 * The ingest benchmark's baseline: the least a Hono webhook receiver on Workers can do. It reads
 * the body, parses the JSON and answers 200, with no auth, validation, routing or Durable Object,
 * so `bench/ingest.ts` can state turnout's ingest cost as a ratio against it in the same workerd.
 * Hono, like turnout's worker, so the ratio is about what turnout does, not which router it uses.
 */
import { Hono } from "hono";

const app = new Hono();

app.get("/healthz", (c) => c.json({ ok: true }));

app.post("/v1/alertmanager", async (c) => {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    return c.json({ error: "not JSON" }, 400);
  }
  const alerts = typeof body === "object" && body !== null && "alerts" in body ? body.alerts : undefined;
  return c.json({ accepted: Array.isArray(alerts) ? alerts.length : 0 });
});

export default app;
