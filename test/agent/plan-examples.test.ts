/**
 * The plans of examples/plans/, loaded as shipped and run in the sandbox: a drill (only dry-run
 * writes, nothing changes), a failover (every object at the secondary's state) and a failback
 * (back at the primary's). Only what belongs to the machine is replaced: the kubeconfig of a
 * named cluster and the load balancer API's address.
 */
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { PlanClusters } from "../../agent/plan/clusters.ts";
import { type PlanAgent, type PlanCluster, planAction, planAgent, startPlanCluster } from "../support/plan-sandbox.ts";

const dir = join(import.meta.dirname, "../../examples/plans");
const example = (file: string) => readFileSync(join(dir, file), "utf8");

let cluster: PlanCluster | undefined;
let server: Server | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
  if (server) await new Promise<void>((r) => server?.close(() => r()));
  server = undefined;
});

/** Runs drill, failover and failback; `check` asserts the state at each side after each. */
async function drillFailoverFailback(
  agent: PlanAgent,
  c: PlanCluster,
  target: string,
  state: () => unknown,
  atSide: { primary: unknown; secondary: unknown },
  whileRunning: (id: string) => Promise<void> = async () => {},
) {
  const drill = await agent.run({ id: `${target}:1`, kind: "drill", dryRun: true });
  expect(drill.status, JSON.stringify(drill.error)).toBe("succeeded");
  expect(c.writes().every((w) => w.dryRun)).toBe(true);
  expect(state()).toEqual(atSide.primary);

  await agent.runner.submit(planAction({ id: `${target}:2` }));
  await whileRunning(`${target}:2`);
  const failover = await agent.waitForReport((r) => r.actionId === `${target}:2` && r.status !== "running");
  expect(failover.status, JSON.stringify(failover.error)).toBe("succeeded");
  expect(state()).toEqual(atSide.secondary);

  await agent.runner.submit(planAction({ id: `${target}:3`, kind: "failback", from: "secondary", to: "primary" }));
  await whileRunning(`${target}:3`);
  const failback = await agent.waitForReport((r) => r.actionId === `${target}:3` && r.status !== "running");
  expect(failback.status, JSON.stringify(failback.error)).toBe("succeeded");
  expect(state()).toEqual(atSide.primary);
  return { drill, failover, failback };
}

describe("examples/plans in the sandbox", () => {
  it("gateway-api-shift.json: drill, failover, failback", async () => {
    const c = await startPlanCluster();
    cluster = c;
    c.apply(join(dir, "gateway-api-objects.yaml"));
    await c.controllers.settled();
    const effects = new Map<string, string>();
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (d) => {
        body += d;
      });
      req.on("end", () => {
        effects.set(String(req.headers["idempotency-key"]), `${req.headers.authorization} ${body}`);
        res.writeHead(200).end("{}");
      });
    });
    const s = server;
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
    const lb = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    const config = JSON.parse(example("gateway-api-shift.json").replaceAll("http://127.0.0.1:18089", lb));
    // The old primary is this same sandbox here; its kubeconfig file is the machine's business.
    const own = c.api.kubeConfig();
    const clusters: PlanClusters = { kubeConfig: () => own, reachable: async () => true };
    const agent = planAgent({ config, kubeConfig: own, clusters, env: { LB_API_TOKEN: "Bearer lb-token" } });
    const deploy = (name: string) =>
      (c.api.store.read({ group: "apps", resource: "deployments" }, "shop", name).spec as { replicas: number })
        .replicas;
    const route = () =>
      (
        c.api.store.read({ group: "gateway.networking.k8s.io", resource: "httproutes" }, "shop", "web").spec as {
          rules: { backendRefs: { weight: number }[] }[];
        }
      ).rules[0]?.backendRefs.map((b) => b.weight);
    const state = () => ({ primary: deploy("web-primary"), secondary: deploy("web-secondary"), weights: route() });
    const { drill } = await drillFailoverFailback(agent, c, "shop-web", state, {
      primary: { primary: 3, secondary: 1, weights: [100, 0] },
      secondary: { primary: 0, secondary: 3, weights: [0, 100] },
    });
    expect(drill.steps.find((s) => s.name === "check-standby-serving")?.detail).toContain("skipped (dry run)");
    expect([...effects.keys()]).toEqual(["shop-web:2:lb-pool", "shop-web:3:lb-pool-back"]);
    expect(effects.get("shop-web:2:lb-pool")).toBe('Bearer lb-token {"pool":"dc-2"}');
  });

  it("cnpg-promotion.json: drill, failover, failback against the example CRD and its simulated operator", async () => {
    const c = await startPlanCluster({ cnpg: "operator" });
    cluster = c;
    c.apply(join(dir, "cnpg-cluster-crd.yaml"));
    c.apply(join(dir, "cnpg-objects.yaml"));
    await c.controllers.settled();
    const agent = planAgent({ config: JSON.parse(example("cnpg-promotion.json")), kubeConfig: c.api.kubeConfig() });
    const state = () => ({
      replica: (
        c.api.store.read({ group: "postgresql.cnpg.io", resource: "clusters" }, "db", "pg-dc2").spec as {
          replica: { enabled: boolean };
        }
      ).replica.enabled,
      host: (c.api.store.read({ resource: "configmaps" }, "shop", "orders-db").data as { DATABASE_HOST: string })
        .DATABASE_HOST,
    });
    const { failover } = await drillFailoverFailback(agent, c, "orders-db", state, {
      primary: { replica: true, host: "pg-dc1-rw.db.svc" },
      secondary: { replica: false, host: "pg-dc2-rw.db.svc" },
    });
    expect(failover.steps[0]?.detail).toContain("condition Ready=True");
    const restarted = c.api.store.get({ group: "apps", resource: "deployments" }, "shop", "orders") as unknown as {
      spec: { template: { metadata: { annotations: Record<string, string> } } };
    };
    expect(restarted.spec.template.metadata.annotations["turnout.dev/restarted-by"]).toBe("orders-db:3");
  });

  it("runbook-c.json: drill, failover (approved follow-ups), failback", async () => {
    const c = await startPlanCluster();
    cluster = c;
    c.apply(join(dir, "runbook-c-objects.yaml"));
    await c.controllers.settled();
    const agent = planAgent({ config: JSON.parse(example("runbook-c.json")), kubeConfig: c.api.kubeConfig() });
    const state = () => ({
      sync: (
        c.api.store.read({ group: "apps", resource: "deployments" }, "etcd-sync", "etcd-synchronizer").spec as {
          replicas: number;
        }
      ).replicas,
      endpoints: (
        c.api.store.read({ resource: "configmaps" }, "platform", "etcd-endpoints").data as {
          ETCD_ENDPOINTS: string;
        }
      ).ETCD_ENDPOINTS,
    });
    const approve = async (id: string) => {
      await agent.waitForReport((r) => r.actionId === id && r.steps.some((s) => s.status === "waiting"));
      const result = await agent.runner.approve({ actionId: id, step: "follow-ups-done", by: "oncall@example.com" });
      expect(result.outcome).toBe("approved");
    };
    const { failover } = await drillFailoverFailback(
      agent,
      c,
      "global-dr",
      state,
      {
        primary: { sync: 1, endpoints: "https://etcd-primary.platform.svc:2379" },
        secondary: { sync: 0, endpoints: "https://etcd-standby.platform.svc:2379" },
      },
      approve,
    );
    expect(failover.steps.filter((s) => s.group === "restart-consumers").map((s) => s.status)).toEqual([
      "succeeded",
      "succeeded",
    ]);
  });
});
