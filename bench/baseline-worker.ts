/**
 * The ingest benchmark's baseline: the least a webhook receiver on Workers can do. It reads the
 * body, parses the JSON and answers 200, with no auth, validation, routing or Durable Object, so
 * `bench/ingest.ts` can state turnout's ingest cost as a ratio against it in the same workerd.
 */
export default {
  async fetch(request: Request): Promise<Response> {
    if (request.method !== "POST") return Response.json({ ok: true });
    try {
      const body: unknown = await request.json();
      const alerts = typeof body === "object" && body !== null && "alerts" in body ? body.alerts : undefined;
      return Response.json({ accepted: Array.isArray(alerts) ? alerts.length : 0 });
    } catch {
      return Response.json({ error: "not JSON" }, { status: 400 });
    }
  },
};
