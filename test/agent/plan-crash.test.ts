/**
 * SIGKILL of the agent at every step of examples/plans/gateway-api-shift.json (real child
 * processes, the production wiring, the ConfigMap store and Lease on a fake Kubernetes API that
 * outlives them): the action finishes once, every object ends at the secondary's state, and the
 * load balancer API, which dedupes by Idempotency-Key and counts effects, sees one effect.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ActionReport } from "../../shared/protocol.ts";
import { SIGNATURE_HEADER, sign } from "../../shared/signature.ts";
import { freePort } from "../support/free-port.ts";
import { type PlanCluster, planAction, startPlanCluster } from "../support/plan-sandbox.ts";
import { type ReportReceiver, startReportReceiver } from "../support/report-receiver.ts";

const root = join(import.meta.dirname, "../..");
const SECRET = "plan-crash-secret-of-at-least-32-chars";
const dir = mkdtempSync(join(tmpdir(), "turnout-plan-crash-"));
let cluster: PlanCluster;
let receiver: ReportReceiver;
let lb: Server;
let child: ChildProcess | undefined;
const lbRequests: string[] = [];
const lbEffects = new Map<string, number>();

beforeAll(async () => {
  receiver = await startReportReceiver(SECRET);
  cluster = await startPlanCluster();
  cluster.apply(join(root, "examples/plans/gateway-api-objects.yaml"));
  await cluster.controllers.settled();
  writeFileSync(join(dir, "kubeconfig.json"), cluster.api.kubeConfig().exportConfig());
  lb = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const key = String(req.headers["idempotency-key"]);
      lbRequests.push(key);
      // The receiver does each key's effect once, and answers a repeat as it answered the first.
      lbEffects.set(key, 1);
      res.writeHead(200, { "content-type": "application/json" }).end('{"active":"dc-2"}');
    });
  });
  await new Promise<void>((r) => lb.listen(0, "127.0.0.1", () => r()));
});
afterAll(async () => {
  if (child) await kill9(child);
  await new Promise<void>((r) => lb.close(() => r()));
  await cluster.close();
  await receiver.close();
});

async function kill9(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
  c.kill("SIGKILL");
  await exited;
}

async function startChild(port: number): Promise<ChildProcess> {
  const lbUrl = `http://127.0.0.1:${(lb.address() as AddressInfo).port}`;
  const example = JSON.parse(
    readFileSync(join(root, "examples/plans/gateway-api-shift.json"), "utf8").replaceAll(
      "http://127.0.0.1:18089",
      lbUrl,
    ),
  );
  const kubeconfig = join(dir, "kubeconfig.json");
  const config = {
    ...example,
    listen: `127.0.0.1:${port}`,
    reportUrl: receiver.url,
    kubeconfig,
    clusters: { "old-primary": { kubeconfig } },
    lease: { name: "turnout-agent", durationSeconds: 2, renewSeconds: 0.5 },
  };
  const c = spawn(process.execPath, ["test/support/plan-agent-child.ts"], {
    cwd: root,
    env: {
      ...process.env,
      AGENT_CONFIG: JSON.stringify(config),
      TURNOUT_AGENT_SECRET: SECRET,
      LB_API_TOKEN: "Bearer t",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  await new Promise<void>((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`agent did not start:\n${seen}`)), 20_000);
    const onData = (b: Buffer) => {
      seen += b.toString();
      if (seen.includes("agent listening") && seen.includes("became leader")) {
        clearTimeout(timer);
        resolve();
      }
    };
    c.stdout?.on("data", onData);
    c.stderr?.on("data", onData);
    c.once("exit", (code) => reject(new Error(`agent exited ${code}:\n${seen}`)));
  });
  return c;
}

const STEPS = ["scale-up-standby", "shift-weights", "check-standby-serving", "lb-pool", "scale-down-old"];

describe("the Gateway API plan under SIGKILL", () => {
  it("killed as each step starts and restarted, finishes once with one effect at the load balancer", {
    timeout: 120_000,
  }, async () => {
    const port = await freePort();
    const body = JSON.stringify(planAction({ id: "shop-web:1" }));
    const post = async () =>
      fetch(`http://127.0.0.1:${port}/v1/actions`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          [SIGNATURE_HEADER]: await sign(SECRET, body, Date.now() / 1000),
        },
        body,
      });
    const reached = (step: string) => (r: ActionReport) =>
      r.actionId === "shop-web:1" &&
      (r.status !== "running" || r.steps.some((s) => s.name === step && s.status !== "pending"));
    for (const step of STEPS) {
      child = await startChild(port);
      expect([200, 202]).toContain((await post()).status);
      await receiver.waitFor(reached(step), 30_000);
      await kill9(child);
    }
    child = await startChild(port);
    const final = await receiver.waitFor((r) => r.actionId === "shop-web:1" && r.status !== "running", 60_000);
    await kill9(child);

    expect(final.status, JSON.stringify(final.error)).toBe("succeeded");
    expect(final.steps.map((s) => s.status)).toEqual(STEPS.map(() => "succeeded"));
    expect([...lbEffects.entries()]).toEqual([["shop-web:1:lb-pool", 1]]);
    expect(new Set(lbRequests)).toEqual(new Set(["shop-web:1:lb-pool"]));
    const deploy = (name: string) =>
      (cluster.api.store.read({ group: "apps", resource: "deployments" }, "shop", name).spec as { replicas: number })
        .replicas;
    expect([deploy("web-primary"), deploy("web-secondary")]).toEqual([0, 3]);
    const route = cluster.api.store.read({ group: "gateway.networking.k8s.io", resource: "httproutes" }, "shop", "web")
      .spec as { rules: { backendRefs: { weight: number }[] }[] };
    expect(route.rules[0]?.backendRefs.map((b) => b.weight)).toEqual([0, 100]);
  });
});
