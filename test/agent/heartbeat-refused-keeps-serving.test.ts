/**
 * While the worker refuses an agent's heartbeats (401: it knows neither the name nor the key),
 * the agent says so on every try: an error log line, `heartbeat: "refused"` in `/readyz` (which
 * stays 200, being the Kubernetes readiness probe) and the metrics; it keeps trying at its
 * cadence and keeps serving. Other failures back off from 1 s up to the cadence. All on a
 * stepped fake clock: the loop's sleeps are recorded and released by the test, never waited out.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { createHeartbeats, type HeartbeatClock } from "../../agent/heartbeat.ts";
import { createLogger } from "../../agent/log.ts";
import { createAgentMetrics } from "../../agent/metrics.ts";
import { createAgentApp } from "../../agent/server.ts";
import { fakeClock } from "../support/fake-clock.ts";
import { freePort } from "../support/free-port.ts";
import { type HeartbeatReceiver, startHeartbeatReceiver } from "../support/heartbeat-receiver.ts";
import { testAgentConfig } from "../support/test-executors.ts";

const KEY = "agent-a-key-0123456789abcdef0123456789";
const receivers: HeartbeatReceiver[] = [];
afterEach(async () => {
  for (const r of receivers.splice(0)) await r.close();
});

async function setup(options: { keys?: Record<string, string>; url?: string; clock?: HeartbeatClock } = {}) {
  const clock = options.clock ?? fakeClock();
  const keys = options.keys ?? { "agent-a": KEY };
  const receiver = await startHeartbeatReceiver(keys, () => clock.now());
  receivers.push(receiver);
  const config = testAgentConfig(["app"], "http://127.0.0.1:1/v1/agent/reports", {
    name: "agent-a",
    heartbeatUrl: options.url ?? receiver.url,
    heartbeatSeconds: 15,
  });
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({}, { write: (line) => lines.push(JSON.parse(line)) });
  const metrics = createAgentMetrics({ processMetrics: false });
  const heartbeats = createHeartbeats({
    config,
    mode: "sandbox",
    version: "test",
    pod: "pod-a",
    leader: () => "pod-a",
    secret: KEY,
    log,
    clock,
    onResult: (r) => metrics.heartbeatResult(r),
  });
  const app = createAgentApp({
    config,
    mode: "sandbox",
    version: "test",
    readiness: async () => ({ ready: true, detail: "leader" }),
    metrics,
    heartbeat: () => heartbeats.state(),
  });
  const metric = async (name: string) => {
    const text = await (await app.request("/metrics")).text();
    return Number(text.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1]);
  };
  return { keys, receiver, heartbeats, app, lines, metric };
}

describe("refused (401)", () => {
  it("logs an error on every try, says refused in /readyz (still 200) and the metrics, and retries at the cadence", async () => {
    const { keys, receiver, heartbeats, app, lines, metric } = await setup({ keys: {} });
    const delays = [await heartbeats.beat(), await heartbeats.beat(), await heartbeats.beat()];
    expect(receiver.statuses).toEqual([401, 401, 401]);
    expect(delays).toEqual([15_000, 15_000, 15_000]);
    const errors = lines.filter((l) => l.level === "error");
    expect(errors).toHaveLength(3);
    expect(errors[0]).toMatchObject({ agent: "agent-a", msg: expect.stringContaining("refused"), error: "HTTP 401" });

    const ready = await app.request("/readyz");
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, heartbeat: "refused" });
    expect(await metric("turnout_agent_heartbeat_ok")).toBe(0);
    expect(await metric("turnout_agent_heartbeat_refused")).toBe(1);
    expect(await metric('turnout_agent_heartbeats_total{result="refused"}')).toBe(3);

    // The operator adds the key on the worker: the next try is heard, and every signal says so.
    keys["agent-a"] = KEY;
    expect(await heartbeats.beat()).toBe(15_000);
    expect(await (await app.request("/readyz")).json()).toMatchObject({ heartbeat: "ok" });
    expect(await metric("turnout_agent_heartbeat_ok")).toBe(1);
    expect(await metric("turnout_agent_heartbeat_refused")).toBe(0);
    expect(lines.filter((l) => l.level === "error")).toHaveLength(3);
  });

  it("without TURNOUT_AGENT_SECRET nothing can be signed: refused, logged, never sent", async () => {
    const clock = fakeClock();
    const receiver = await startHeartbeatReceiver({}, clock.now);
    receivers.push(receiver);
    const lines: string[] = [];
    const heartbeats = createHeartbeats({
      config: testAgentConfig(["app"], "http://127.0.0.1:1/r", { heartbeatUrl: receiver.url }),
      mode: "sandbox",
      version: "test",
      pod: "p",
      leader: () => null,
      secret: "",
      log: createLogger({}, { write: (l) => lines.push(l) }),
      clock,
    });
    expect(await heartbeats.beat()).toBe(15_000);
    expect(receiver.statuses).toEqual([]);
    expect(heartbeats.state()).toMatchObject({
      status: "refused",
      error: expect.stringContaining("TURNOUT_AGENT_SECRET"),
    });
    expect(lines.map((l) => JSON.parse(l).level)).toEqual(["error"]);
  });
});

describe("other failures", () => {
  it("back off from 1 s, doubling up to the cadence, without error logs; an acknowledged one resets the backoff", async () => {
    const { receiver, heartbeats, app, lines, metric } = await setup();
    receiver.answer = "fail";
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) delays.push(await heartbeats.beat());
    expect(delays).toEqual([1000, 2000, 4000, 8000, 15_000, 15_000]);
    expect(heartbeats.state()).toMatchObject({ status: "failing", error: "HTTP 503" });
    expect(await (await app.request("/readyz")).json()).toMatchObject({ heartbeat: "failing" });
    expect(await metric("turnout_agent_heartbeat_ok")).toBe(0);
    expect(await metric("turnout_agent_heartbeat_refused")).toBe(0);
    expect(lines.filter((l) => l.level === "error")).toEqual([]);
    receiver.answer = "accept";
    expect(await heartbeats.beat()).toBe(15_000);
    receiver.answer = "fail";
    expect(await heartbeats.beat()).toBe(1000);
  });

  it("a worker that is not listening is a failure with the connection error, backed off", async () => {
    const port = await freePort();
    const { heartbeats } = await setup({ url: `http://127.0.0.1:${port}/v1/agent/heartbeats` });
    expect(await heartbeats.beat()).toBe(1000);
    expect(heartbeats.state()).toMatchObject({ status: "failing", error: expect.stringContaining("ECONNREFUSED") });
  });
});

/** A clock whose sleeps wait until the test releases them; time moves by the slept amount. */
function steppedClock() {
  let t = Date.now();
  const slept: number[] = [];
  const waiting: (() => void)[] = [];
  const clock: HeartbeatClock = {
    now: () => t,
    sleep: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        slept.push(ms);
        signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
        waiting.push(() => {
          t += ms;
          resolve();
        });
      }),
  };
  return {
    clock,
    slept,
    /** Waits until the loop sleeps, then wakes it. */
    async release() {
      await vi.waitFor(() => expect(waiting.length).toBe(1));
      waiting.shift()?.();
    },
  };
}

describe("the loop", () => {
  it("beats at once, then every heartbeatSeconds, each signed at the time it is sent; stop() ends it", async () => {
    const stepped = steppedClock();
    const { receiver, heartbeats } = await setup({ clock: stepped.clock });
    heartbeats.start();
    await stepped.release();
    await stepped.release();
    await vi.waitFor(() => expect(receiver.accepted).toHaveLength(3));
    expect(stepped.slept.slice(0, 2)).toEqual([15_000, 15_000]);
    const ats = receiver.accepted.map((a) => Date.parse(a.heartbeat.at));
    expect(ats.slice(1).map((at, i) => at - (ats[i] ?? 0))).toEqual([15_000, 15_000]);
    expect(receiver.accepted.map((a) => a.t * 1000)).toEqual(ats.map((at) => Math.floor(at / 1000) * 1000));
    await heartbeats.stop();
    expect(receiver.accepted).toHaveLength(3);
  });

  it("keeps trying through a refusal and is heard again without a restart", async () => {
    const stepped = steppedClock();
    const { keys, receiver, heartbeats } = await setup({ clock: stepped.clock, keys: {} });
    heartbeats.start();
    await stepped.release();
    await vi.waitFor(() => expect(receiver.statuses).toEqual([401, 401]));
    keys["agent-a"] = KEY;
    await stepped.release();
    await vi.waitFor(() => expect(receiver.statuses).toEqual([401, 401, 200]));
    expect(heartbeats.state().status).toBe("ok");
    await heartbeats.stop();
  });
});
