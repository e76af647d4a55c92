/**
 * The Miniflare-direct benches bundle each worker with esbuild themselves (bench/miniflare-worker.ts),
 * not through wrangler: a dependency that imports a bare Node builtin (`"util"`, as the cloudevents
 * SDK does) once broke `npm run bench -- ingest-miniflare` with nothing in the suite noticing. Each
 * worker the ingest bench compares is bundled, started and sent one webhook here.
 */
import { afterAll, describe, expect, it } from "vitest";
import { type Endpoint, startEndpoint, type WorkerKind } from "../../bench/endpoint.ts";
import { body, stubAgent, workerConfig } from "../../bench/ingest.ts";

const TOKENS = { alertmanager: "bench-bundle-am-token-0123456789", operator: "bench-bundle-op-token-0123456789" };
const running: Endpoint[] = [];
let agent: Awaited<ReturnType<typeof stubAgent>> | undefined;

afterAll(async () => {
  for (const e of running) await e.stop();
  await agent?.close();
}, 30_000);

describe("the ingest bench's workers under Miniflare direct", () => {
  it.each<WorkerKind>(["turnout", "storage-floor", "front-only", "baseline"])(
    "%s bundles, starts and takes a 10-alert webhook",
    async (kind) => {
      agent ??= await stubAgent();
      const endpoint = await startEndpoint("miniflare", kind, {
        TURNOUT_CONFIG: workerConfig(agent.url),
        ALERTMANAGER_TOKEN: TOKENS.alertmanager,
        OPERATOR_TOKEN: TOKENS.operator,
        TURNOUT_AGENT_SECRET: "bench-bundle-agent-key-0123456789abcdef",
      });
      running.push(endpoint);
      const res = await fetch(`${endpoint.url}/v1/alertmanager`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${TOKENS.alertmanager}` },
        body: body(0, 10),
      });
      expect(res.status, await res.text()).toBe(200);
      expect(endpoint.cpuMs()).toBeGreaterThan(0);
    },
    60_000,
  );
});
