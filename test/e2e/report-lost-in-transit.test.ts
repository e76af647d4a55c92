/**
 * A report lost in transit (issue 5): the agent's final `succeeded` report is dropped once on its
 * way to the real worker (the connection is cut), the agent re-sends it, and the target's object
 * still ends steady on the other side with exactly one action.
 */
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Stack, startStack, waitFor } from "./stack.ts";

let stack: Stack;
let proxy: Server;
let dropped = 0;
let forwarded = 0;

/** Forwards reports to the worker, but cuts the connection of the first `succeeded` one. */
async function startFlakyProxy(target: string): Promise<string> {
  proxy = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks).toString("utf8");
      if (dropped === 0 && body.includes('"status":"succeeded"')) {
        dropped += 1;
        req.socket.destroy();
        return;
      }
      forwarded += 1;
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === "string" && k !== "host" && k !== "content-length") headers[k] = v;
      }
      const upstream = await fetch(target, { method: "POST", headers, body });
      res.writeHead(upstream.status, { "content-type": upstream.headers.get("content-type") ?? "application/json" });
      res.end(await upstream.text());
    });
  });
  await new Promise<void>((resolve, reject) => {
    proxy.once("error", reject);
    proxy.listen(0, "127.0.0.1", resolve);
  });
  const address = proxy.address();
  if (typeof address !== "object" || !address) throw new Error("proxy has no address");
  return `http://127.0.0.1:${address.port}/v1/agent/reports`;
}

beforeAll(async () => {
  stack = await startStack({
    targets: { "lossy-gw": { kind: "route-swap", holdSeconds: 1 } },
    reportUrl: startFlakyProxy,
  });
}, 90_000);

afterAll(async () => {
  await stack?.stop();
  await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
});

it("re-sends a dropped final report and the object ends steady on secondary with one action", async () => {
  const answer = await stack.alert([{ target: "lossy-gw", side: "primary", status: "firing", at: Date.now() }]);
  expect(answer.body.accepted).toBe(1);
  const view = await waitFor(
    "lossy-gw steady on secondary",
    async () => {
      const v = await stack.view("lossy-gw");
      return v.activeSide === "secondary" && v.phase === "steady" ? v : undefined;
    },
    30_000,
  );
  expect(view.action).toMatchObject({ id: "lossy-gw:1", status: "succeeded" });
  expect(dropped).toBe(1);
  expect(forwarded).toBeGreaterThan(0);
  const events = await stack.events("lossy-gw");
  expect(events.filter((e) => e.type === "action.dispatched")).toHaveLength(1);
  expect(events.filter((e) => e.type === "action.succeeded")).toHaveLength(1);
}, 60_000);
