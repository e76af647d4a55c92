/**
 * `npm run manifests` prints exactly the RBAC a config's plans use (design §11.2, §11.6): each
 * example of examples/plans runs in the sandbox (drill, failover, failback) with the agent's own
 * durable memory and Lease on the fake API, every request each cluster's fake API received is held
 * against that cluster's printed RBAC with the can-i evaluator (allowed), and every grant printed
 * must be exercised by some request (nothing more). The default agent configs print no more than
 * the hand-written RBAC of agent/deploy/base, whose own tests hold it against each executor.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { startLeaseElector } from "../../agent/lease.ts";
import { ConfigMapActionStore } from "../../agent/memory.ts";
import type { PlanClusters } from "../../agent/plan/clusters.ts";
import { agentRbac } from "../../agent/rbac/manifests.ts";
import { OWN_CLUSTER } from "../../agent/rbac/permissions.ts";
import type { WriteRecord } from "../../agent/sandbox/fake-kube-api.ts";
import { type AgentConfig, AgentConfigSchema } from "../../shared/config.ts";
import { type PlanCluster, planAction, planAgent, startPlanCluster } from "../support/plan-sandbox.ts";
import { grantsOf, permissionsUsed, type RbacDoc } from "../support/rbac-grants.ts";
import { type BaseObject, readBase, schemaProblem, shippedAgentConfig } from "./kustomize-base.ts";
import { attributesOf, canI, describe as describeRequest, type RequestAttributes } from "./rbac-can-i.ts";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "../..");
const EXAMPLES = join(ROOT, "examples/plans");
const SA = { namespace: "turnout", name: "turnout-agent" };

const clusters: PlanCluster[] = [];
afterEach(async () => {
  for (const c of clusters.splice(0)) await c.close();
});

function exampleConfig(file: string, replace: Record<string, string> = {}): AgentConfig {
  let text = readFileSync(join(EXAMPLES, file), "utf8");
  for (const [from, to] of Object.entries(replace)) text = text.replaceAll(from, to);
  return AgentConfigSchema.parse(JSON.parse(text));
}

/** The printed RBAC of one cluster, as the can-i evaluator reads objects. */
function printed(config: AgentConfig, cluster: string): BaseObject[] {
  const rbac = agentRbac(config).find((c) => c.cluster === cluster);
  return (rbac?.objects ?? []).map(({ object }) => ({
    file: `manifests:${cluster || "own"}`,
    apiVersion: String(object.apiVersion),
    kind: object.kind,
    name: object.metadata.name,
    namespace: object.metadata.namespace,
    raw: object,
  }));
}

function grantsOfObjects(objects: readonly BaseObject[]): string[] {
  return grantsOf(
    objects
      .filter((o) => o.kind === "Role" || o.kind === "ClusterRole")
      .map((o) => ({
        kind: o.kind,
        metadata: { name: o.name, namespace: o.namespace },
        rules: (o.raw as { rules: RbacDoc["rules"] }).rules,
      })),
  );
}

/** What the authorizer sees of one entry of the fake API's write log. */
function writeAttributes(w: WriteRecord): RequestAttributes[] {
  const base: RequestAttributes = {
    verb: w.verb,
    apiGroup: w.group,
    resource: w.resource,
    ...(w.subresource ? { subresource: w.subresource } : {}),
    ...(w.namespace ? { namespace: w.namespace } : {}),
    // A create by POST names no object in its URL, so RBAC sees none.
    ...(w.verb !== "create" && w.name ? { name: w.name } : {}),
  };
  return w.patchType === "apply" ? [base, { ...base, verb: "create", name: w.name }] : [base];
}

/** Requests for API resources (discovery and OpenAPI are non-resource URLs every identity may read). */
const resourceRequests = (c: PlanCluster) =>
  c.api.requests.filter((r) => /^\/apis?\/.+/.test(r.path) && attributesOf(r)[0]?.resource !== "");

/** Every write and every read each cluster received is allowed; every printed grant was used. */
function expectExactlyWhatWasUsed(config: AgentConfig, byCluster: Map<string, PlanCluster>) {
  for (const [name, c] of byCluster) {
    const rbac = printed(config, name);
    expect(rbac.length, `RBAC printed for cluster ${name || "own"}`).toBeGreaterThan(0);
    expect(rbac.map(schemaProblem).filter(Boolean)).toEqual([]);
    expect(c.api.writes.length).toBeGreaterThan(0);
    const denied = [...c.api.writes.flatMap(writeAttributes), ...resourceRequests(c).flatMap(attributesOf)].filter(
      (req) => !canI(rbac, SA, req),
    );
    expect(denied.map(describeRequest), `denied on cluster ${name || "own"}`).toEqual([]);
    const used = [...permissionsUsed(resourceRequests(c))];
    const unused = grantsOfObjects(rbac).filter((grant) => !used.some((u) => covers(grant, u)));
    expect(unused, `granted but never used on cluster ${name || "own"}`).toEqual([]);
  }
}

/** Whether `grant` allows `used` ("*" namespace or name in the grant matches any). */
function covers(grant: string, used: string): boolean {
  const [g, res, ns, v, n] = grant.split("|");
  const [ug, ures, uns, uv, un] = used.split("|");
  return g === ug && res === ures && v === uv && (ns === "*" || ns === uns) && (n === "*" || n === un);
}

/** A plan agent as the agent runs in a cluster: ConfigMap memory and a Lease on its own cluster's API. */
async function clusterAgent(config: AgentConfig, own: PlanCluster, planClusters?: PlanClusters) {
  const kubeConfig = own.api.kubeConfig();
  const lease = startLeaseElector({
    kubeConfig,
    namespace: config.namespace,
    name: config.lease.name,
    durationSeconds: 15,
    renewSeconds: 5,
    autoStart: false,
  });
  await lease.tick(); // creates the Lease
  await lease.tick(); // reads and renews it
  await lease.stop({ release: false });
  const store = new ConfigMapActionStore({
    kubeConfig,
    namespace: config.namespace,
    targets: Object.keys(config.targets),
  });
  return planAgent({
    config,
    kubeConfig,
    store,
    env: { LB_API_TOKEN: "Bearer lb-token" },
    ...(planClusters ? { clusters: planClusters } : {}),
  });
}

async function drillFailoverFailback(
  agent: Awaited<ReturnType<typeof clusterAgent>>,
  target: string,
  approve: (id: string) => Promise<void> = async () => {},
) {
  const drill = await agent.run({ id: `${target}:1`, kind: "drill", dryRun: true });
  expect(drill.status, JSON.stringify(drill.error)).toBe("succeeded");
  for (const [id, more] of [
    [`${target}:2`, {}],
    [`${target}:3`, { kind: "failback", from: "secondary", to: "primary" }],
  ] as const) {
    await agent.runner.submit(planAction({ id, ...more }));
    await approve(id);
    const report = await agent.waitForReport((r) => r.actionId === id && r.status !== "running");
    expect(report.status, JSON.stringify(report.error)).toBe("succeeded");
  }
}

describe("npm run manifests: the RBAC each example plan uses, and nothing more", () => {
  it("gateway-api-shift.json: the agent's cluster and old-primary each get what their steps use", async () => {
    const own = await startPlanCluster();
    const old = await startPlanCluster();
    clusters.push(own, old);
    for (const c of [own, old]) {
      c.apply(join(EXAMPLES, "gateway-api-objects.yaml"));
      await c.controllers.settled();
    }
    // The load balancer's http step talks to no Kubernetes API; a receiver answers it.
    const lb = createServer((_req, res) => res.writeHead(200).end("{}"));
    await new Promise<void>((r) => lb.listen(0, "127.0.0.1", () => r()));
    const port = (lb.address() as AddressInfo).port;
    try {
      const config = exampleConfig("gateway-api-shift.json", { "127.0.0.1:18089": `127.0.0.1:${port}` });
      const oldKube = old.api.kubeConfig();
      const planClusters: PlanClusters = {
        kubeConfig: (name) => (name === "old-primary" ? oldKube : own.api.kubeConfig()),
        reachable: async () => true,
      };
      const agent = await clusterAgent(config, own, planClusters);
      await drillFailoverFailback(agent, "shop-web");
      expectExactlyWhatWasUsed(
        config,
        new Map([
          [OWN_CLUSTER, own],
          ["old-primary", old],
        ]),
      );
    } finally {
      await new Promise<void>((r) => lb.close(() => r()));
    }
  });

  it("cnpg-promotion.json: the CRD's kind by its plural, the app's ConfigMap and restart", async () => {
    const own = await startPlanCluster({ cnpg: "operator" });
    clusters.push(own);
    own.apply(join(EXAMPLES, "cnpg-cluster-crd.yaml"));
    own.apply(join(EXAMPLES, "cnpg-objects.yaml"));
    await own.controllers.settled();
    const config = exampleConfig("cnpg-promotion.json");
    await drillFailoverFailback(await clusterAgent(config, own), "orders-db");
    expectExactlyWhatWasUsed(config, new Map([[OWN_CLUSTER, own]]));
  });

  it("runbook-c.json: scale, ConfigMap switch, parallel restarts; an approval needs no RBAC", async () => {
    const own = await startPlanCluster();
    clusters.push(own);
    own.apply(join(EXAMPLES, "runbook-c-objects.yaml"));
    await own.controllers.settled();
    const config = exampleConfig("runbook-c.json");
    const agent = await clusterAgent(config, own);
    await drillFailoverFailback(agent, "global-dr", async (id) => {
      await agent.waitForReport((r) => r.actionId === id && r.steps.some((s) => s.status === "waiting"));
      const result = await agent.runner.approve({ actionId: id, step: "follow-ups-done", by: "oncall@example.com" });
      expect(result.outcome).toBe("approved");
    });
    expectExactlyWhatWasUsed(config, new Map([[OWN_CLUSTER, own]]));
  });

  it("would catch a missing grant: without the scale subresource the standby cannot be scaled", async () => {
    const config = exampleConfig("runbook-c.json");
    const rbac = printed(config, OWN_CLUSTER).map((o) =>
      o.kind === "Role" && o.namespace === "etcd-sync"
        ? {
            ...o,
            raw: {
              ...o.raw,
              rules: (o.raw as { rules: { resources: string[] }[] }).rules.filter(
                (r) => !r.resources.includes("deployments/scale"),
              ),
            },
          }
        : o,
    );
    const scale: RequestAttributes = {
      verb: "patch",
      apiGroup: "apps",
      resource: "deployments",
      subresource: "scale",
      namespace: "etcd-sync",
      name: "etcd-synchronizer",
    };
    expect(canI(printed(config, OWN_CLUSTER), SA, scale)).toBe(true);
    expect(canI(rbac, SA, scale)).toBe(false);
    // Named: another Deployment of that namespace cannot be scaled.
    expect(canI(printed(config, OWN_CLUSTER), SA, { ...scale, name: "other" })).toBe(false);
  });
});

describe("npm run manifests: the default agent configs", () => {
  /** The grants of the hand-written base RBAC, which the executor RBAC tests hold against real requests. */
  const shipped = grantsOfObjects(readBase());
  /** What the base grants beyond what executors send, on purpose (its comments say why). */
  const BASE_EXTRAS = ["|nodes|*|watch|*", "|pods|*|watch|*", "storage.k8s.io|volumeattachments|*|watch|*"];

  it("agent/deploy/base's config: the base's RBAC, less the watches it grants for people and the DaemonSet named", () => {
    const generated = grantsOfObjects(printed(shippedAgentConfig(), OWN_CLUSTER));
    expect(generated.filter((g) => !shipped.some((s) => covers(s, g)))).toEqual([]);
    const missing = shipped.filter((s) => !generated.some((g) => covers(s, g)));
    expect(missing.sort()).toEqual([...BASE_EXTRAS].sort());
    // Narrower than the base, which lets the agent read any DaemonSet of the operator's namespace.
    expect(generated).toContain("apps|daemonsets|static-routes|get|k8s-staticroute-operator");
    expect(generated).not.toContain("apps|daemonsets|static-routes|get|*");
  });

  for (const file of ["agent-a.config.json", "agent-b.config.json"]) {
    it(`${file}: valid RBAC objects, nothing the base does not grant for the same executors`, () => {
      const config = AgentConfigSchema.parse(JSON.parse(readFileSync(join(ROOT, file), "utf8")));
      const objects = printed(config, OWN_CLUSTER);
      expect(objects.map(schemaProblem).filter(Boolean)).toEqual([]);
      // The local configs serve the same example targets as the base, in the agent's namespace.
      const generated = grantsOfObjects(objects);
      expect(generated.length).toBeGreaterThan(0);
      expect(generated.filter((g) => !shipped.some((s) => covers(s, g)))).toEqual([]);
    });
  }

  it("prints YAML that kubectl-style tools read back to the same objects, one set per cluster", async () => {
    const { stdout } = await run(
      process.execPath,
      ["scripts/manifests.ts", "--config", join(EXAMPLES, "gateway-api-shift.json")],
      { cwd: ROOT },
    );
    const docs = parseAllDocuments(stdout).map((d) => d.toJS() as { kind: string; metadata: { namespace?: string } });
    const config = exampleConfig("gateway-api-shift.json");
    const expected = agentRbac(config).flatMap((c) => c.objects.map((o) => o.object));
    expect(docs).toEqual(expected);
    expect(stdout).toContain("# RBAC for cluster old-primary");
    const one = await run(
      process.execPath,
      ["scripts/manifests.ts", "--config", join(EXAMPLES, "gateway-api-shift.json"), "--cluster", "old-primary"],
      { cwd: ROOT },
    );
    expect(parseAllDocuments(one.stdout).map((d) => d.toJS())).toEqual(
      agentRbac(config)
        .find((c) => c.cluster === "old-primary")
        ?.objects.map((o) => o.object),
    );
  });

  it("exits 1 naming the problem for an invalid config, 2 without --config", async () => {
    const bad = await run(process.execPath, ["scripts/manifests.ts", "--config", join(ROOT, "package.json")], {
      cwd: ROOT,
    }).catch((e: { code: number; stderr: string }) => e);
    expect((bad as { code: number }).code).toBe(1);
    expect((bad as { stderr: string }).stderr).toContain("invalid agent config");
    const none = await run(process.execPath, ["scripts/manifests.ts"], { cwd: ROOT }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((none as { code: number }).code).toBe(2);
  });
});
