/**
 * The Miniflare-direct benches bundle each worker with esbuild themselves (bench/miniflare-worker.ts),
 * not through wrangler: a dependency that imports a bare Node builtin (`"util"`, as the cloudevents
 * SDK does) once broke `npm run bench -- ingest-miniflare` with nothing in the suite noticing. Each
 * worker the ingest bench compares is bundled, started and sent one webhook here, and the
 * sqlite-commit bench's worker is checked to write what each of its shapes names.
 */
import { afterAll, describe, expect, it } from "vitest";
import { type Endpoint, startEndpoint, type WorkerKind } from "../../bench/endpoint.ts";
import { body, stubAgent, workerConfig } from "../../bench/ingest.ts";
import { startDirectWorker } from "../../bench/miniflare-worker.ts";
import { run as runSqliteCommit } from "../../bench/sqlite-commit.ts";
import { SHAPES, type Shape } from "../../bench/sqlite-commit-shapes.ts";

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

describe("the sqlite-commit bench's worker", () => {
  it("writes, per call, exactly the tables its shape names, and refuses an unknown shape", async () => {
    const w = await startDirectWorker({
      entry: "bench/sqlite-commit-worker.ts",
      vars: {},
      durableObjects: { COMMITS: "CommitObject" },
    });
    try {
      const rows = async (shape: Shape) =>
        (await (await fetch(`${w.url}/rows?shape=${encodeURIComponent(shape)}`)).json()) as {
          events: number;
          stateWritten: boolean;
        };
      for (const shape of SHAPES) {
        const res = await fetch(`${w.url}/?shape=${encodeURIComponent(shape)}&calls=25`);
        expect(res.status, await res.text()).toBe(200);
      }
      const writesEvents = (s: Shape) => s === "signal+events" || s === "signal+events+state";
      for (const shape of SHAPES) {
        expect(await rows(shape), shape).toEqual({
          events: writesEvents(shape) ? 50 : 0,
          stateWritten: shape === "signal+events+state",
        });
      }
      expect((await fetch(`${w.url}/?shape=everything&calls=1`)).status).toBe(400);
    } finally {
      await w.stop();
    }
  }, 60_000);

  it("reports a CPU cost for every shape", async () => {
    const f = await runSqliteCommit({ calls: 200, rounds: 1 });
    expect(Object.keys(f.cpuMicrosPerCall).sort()).toEqual([...SHAPES].sort());
    for (const shape of SHAPES) expect(Number.isFinite(f.cpuMicrosPerCall[shape]), shape).toBe(true);
    // 1,000 committed calls cost workerd some CPU (its counters tick every 10 ms).
    expect(SHAPES.reduce((sum, s) => sum + f.cpuMicrosPerCall[s], 0)).toBeGreaterThan(0);
  }, 60_000);
});
