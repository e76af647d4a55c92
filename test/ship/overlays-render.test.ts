/**
 * agent/deploy/overlays/cluster-a and cluster-b (design §11.1: an agent in each cluster, each
 * with its own key) render with the real kustomize (`kubectl kustomize`, built into kubectl),
 * every object passes the Kubernetes schemas, and the two differ exactly where they must: each
 * agent's name in its config, each its own Secret for its key, each serving only its targets;
 * everything else is the base. The base spreads its replicas across zones and node groups.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { z } from "zod";
import { AgentConfigSchema } from "../../shared/config.ts";
import { requireBinary } from "../support/monitoring-process.ts";
import { type BaseObject, DEPLOY_DIR, readBase, schemaProblem } from "./kustomize-base.ts";

const OVERLAYS = join(DEPLOY_DIR, "../overlays");
let kubectl = "/usr/bin/kubectl";

function render(dir: string): BaseObject[] {
  const out = execFileSync(kubectl, ["kustomize", dir], { encoding: "utf8", timeout: 20_000 });
  return parseAllDocuments(out).map((doc) => {
    const raw = doc.toJS() as Record<string, unknown> & { metadata: { name: string; namespace?: string } };
    return {
      file: dir,
      apiVersion: String(raw.apiVersion),
      kind: String(raw.kind),
      name: raw.metadata.name,
      namespace: raw.metadata.namespace,
      raw,
    };
  });
}

const EnvVar = z.object({
  name: z.string(),
  valueFrom: z.object({ secretKeyRef: z.object({ name: z.string(), key: z.string() }).optional() }).optional(),
});
const DeploymentShape = z.object({
  spec: z.object({
    replicas: z.number(),
    template: z.object({
      spec: z.object({
        containers: z.array(z.object({ name: z.string(), env: z.array(EnvVar) })),
        topologySpreadConstraints: z
          .array(z.object({ topologyKey: z.string(), maxSkew: z.number(), whenUnsatisfiable: z.string() }))
          .optional(),
      }),
    }),
  }),
});

const one = (objects: BaseObject[], kind: string) => {
  const found = objects.filter((o) => o.kind === kind);
  expect(found, kind).toHaveLength(1);
  return found[0] as BaseObject;
};
const agentConfigOf = (objects: BaseObject[]) =>
  AgentConfigSchema.parse(
    parseYaml(
      z.object({ data: z.object({ "agent.yaml": z.string() }) }).parse(one(objects, "ConfigMap").raw).data[
        "agent.yaml"
      ],
    ),
  );
const secretsOf = (objects: BaseObject[]) => {
  const d = DeploymentShape.parse(one(objects, "Deployment").raw);
  const env = d.spec.template.spec.containers.find((c) => c.name === "agent")?.env ?? [];
  return Object.fromEntries(
    env.flatMap((e) => (e.valueFrom?.secretKeyRef ? [[e.name, e.valueFrom.secretKeyRef.name]] : [])),
  );
};

let a: BaseObject[];
let b: BaseObject[];
let base: BaseObject[];
beforeAll(() => {
  kubectl = requireBinary(kubectl, "kubernetes-client");
  a = render(join(OVERLAYS, "cluster-a"));
  b = render(join(OVERLAYS, "cluster-b"));
  base = render(DEPLOY_DIR);
});

describe("the per-cluster overlays", () => {
  it("render, and every object passes the Kubernetes schemas", () => {
    for (const objects of [a, b]) {
      expect(objects.length).toBeGreaterThan(10);
      expect(objects.map(schemaProblem).filter(Boolean)).toEqual([]);
    }
  });

  it("name a distinct agent each, agent-a and agent-b, in a config the agent accepts", () => {
    expect(agentConfigOf(a).name).toBe("agent-a");
    expect(agentConfigOf(b).name).toBe("agent-b");
  });

  it("read each agent's key from its own Secret, and nothing of either from the other's", () => {
    const sa = secretsOf(a);
    const sb = secretsOf(b);
    expect(sa.TURNOUT_AGENT_SECRET).toBe("turnout-agent-a-secrets");
    expect(sb.TURNOUT_AGENT_SECRET).toBe("turnout-agent-b-secrets");
    for (const key of [
      "TURNOUT_AGENT_SECRET",
      "TURNOUT_AGENT_SECRET_NEXT",
      "QSTASH_CURRENT_SIGNING_KEY",
      "QSTASH_NEXT_SIGNING_KEY",
    ]) {
      expect(sa[key], key).toBe("turnout-agent-a-secrets");
      expect(sb[key], key).toBe("turnout-agent-b-secrets");
    }
    // The base's shared Secret is gone from both.
    expect(Object.values(sa)).not.toContain("turnout-agent-secrets");
    expect(Object.values(sb)).not.toContain("turnout-agent-secrets");
  });

  it("serve only their own targets: the standby cluster's agent has no route or node target of the primary's", () => {
    const ta = agentConfigOf(a).targets;
    const tb = agentConfigOf(b).targets;
    expect(Object.keys(ta).sort()).toEqual(["bootstrap-dns", "dc-nodes", "egress-gw", "global-dr", "platform-dns"]);
    expect(Object.keys(tb).sort()).toEqual(["bootstrap-dns", "global-dr", "platform-dns"]);
    // The lag heartbeat is written on the primary, by the primary cluster's agent only (design §7).
    const hb = (t: (typeof ta)[string] | undefined) =>
      t?.kind === "etcd-sync-teardown" ? t.etcd.heartbeat?.write : undefined;
    expect(hb(ta["global-dr"])).toBe(true);
    expect(hb(tb["global-dr"])).toBe(false);
  });

  it("differ from the base only in the ConfigMap and the Deployment's Secret references", () => {
    const key = (o: BaseObject) => `${o.kind}/${o.namespace ?? ""}/${o.name}`;
    const byKey = new Map(base.map((o) => [key(o), JSON.stringify(o.raw)]));
    for (const objects of [a, b]) {
      expect(objects.map(key).sort()).toEqual([...byKey.keys()].sort());
      const changed = objects.filter((o) => byKey.get(key(o)) !== JSON.stringify(o.raw)).map((o) => o.kind);
      expect(changed.sort()).toEqual(["ConfigMap", "Deployment"]);
    }
  });
});

describe("the base", () => {
  it("renders as the files kustomize-base.ts reads", () => {
    expect(base.map((o) => `${o.kind}/${o.name}`).sort()).toEqual(
      readBase()
        .map((o) => `${o.kind}/${o.name}`)
        .sort(),
    );
  });

  it("runs at least two replicas spread across zones (hard) and node groups and nodes (soft)", () => {
    const d = DeploymentShape.parse(one(base, "Deployment").raw);
    expect(d.spec.replicas).toBeGreaterThanOrEqual(2);
    const spread = Object.fromEntries(
      (d.spec.template.spec.topologySpreadConstraints ?? []).map((c) => [c.topologyKey, c.whenUnsatisfiable]),
    );
    expect(spread).toEqual({
      "topology.kubernetes.io/zone": "DoNotSchedule",
      "node.kubernetes.io/node-group": "ScheduleAnyway",
      "kubernetes.io/hostname": "ScheduleAnyway",
    });
  });
});
