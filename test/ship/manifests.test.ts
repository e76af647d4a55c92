/**
 * agent/deploy is a consistent kustomize base: every listed file exists and parses, every object
 * validates against its Kubernetes schema (kubernetes-models), and the objects line up with each
 * other and with the agent config they carry (names, namespaces, selectors, probes, secrets, RBAC).
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { type AgentConfig, validateAgentConfig } from "../../shared/config.ts";
import { grantsOf } from "../support/rbac-grants.ts";
import { type BaseObject, DEPLOY_DIR, readBase, readKustomization, schemaProblem } from "./kustomize-base.ts";

const kustomization = readKustomization();
const base = readBase(kustomization);

function one(kind: string, name?: string): BaseObject {
  const found = base.filter((o) => o.kind === kind && (name === undefined || o.name === name));
  expect(
    found.map((o) => `${o.kind}/${o.name}`),
    `exactly one ${kind}${name ? ` ${name}` : ""}`,
  ).toHaveLength(1);
  return found[0] as BaseObject;
}

const Labels = z.record(z.string(), z.string());
const LabelSelector = z.object({ matchLabels: Labels });
const PortRef = z.union([z.string(), z.number()]);
const Probe = z.object({ httpGet: z.object({ path: z.string(), port: PortRef }) });
const EnvVar = z.object({
  name: z.string(),
  valueFrom: z
    .object({
      secretKeyRef: z.object({ name: z.string(), key: z.string(), optional: z.boolean().optional() }).optional(),
    })
    .passthrough()
    .optional(),
});
const Container = z.object({
  name: z.string(),
  image: z.string(),
  args: z.array(z.string()),
  ports: z.array(z.object({ name: z.string(), containerPort: z.number() })),
  env: z.array(EnvVar),
  readinessProbe: Probe,
  livenessProbe: Probe,
  resources: z.object({ requests: Labels, limits: Labels }),
  securityContext: z.object({
    runAsNonRoot: z.literal(true),
    readOnlyRootFilesystem: z.literal(true),
    allowPrivilegeEscalation: z.literal(false),
    capabilities: z.object({ drop: z.array(z.string()) }),
    seccompProfile: z.object({ type: z.literal("RuntimeDefault") }),
  }),
  volumeMounts: z.array(z.object({ name: z.string(), mountPath: z.string() })),
});
const DeploymentSchema = z.object({
  metadata: z.object({ namespace: z.string() }),
  spec: z.object({
    replicas: z.number(),
    selector: LabelSelector,
    template: z.object({
      metadata: z.object({ labels: Labels }),
      spec: z.object({
        serviceAccountName: z.string(),
        securityContext: z.object({ runAsNonRoot: z.literal(true), seccompProfile: z.object({ type: z.string() }) }),
        containers: z.array(Container).length(1),
        volumes: z.array(
          z.object({
            name: z.string(),
            configMap: z
              .object({ name: z.string(), items: z.array(z.object({ key: z.string(), path: z.string() })) })
              .optional(),
            secret: z.object({ secretName: z.string(), optional: z.boolean().optional() }).optional(),
            emptyDir: z.object({}).passthrough().optional(),
          }),
        ),
      }),
    }),
  }),
});
const ServiceSchema = z.object({
  spec: z.object({
    selector: Labels,
    ports: z.array(z.object({ name: z.string(), port: z.number(), targetPort: PortRef })),
  }),
});
const Subject = z.object({ kind: z.string(), name: z.string(), namespace: z.string().optional() });
const BindingSchema = z.object({
  roleRef: z.object({ apiGroup: z.string(), kind: z.enum(["Role", "ClusterRole"]), name: z.string() }),
  subjects: z.array(Subject).min(1),
});
const Rule = z.object({
  apiGroups: z.array(z.string()),
  resources: z.array(z.string()),
  resourceNames: z.array(z.string()).optional(),
  verbs: z.array(z.string()),
});
const RoleSchema = z.object({ rules: z.array(Rule) });

const deployment = DeploymentSchema.parse(one("Deployment", "turnout-agent").raw);
const pod = deployment.spec.template.spec;
const container = pod.containers[0] as z.infer<typeof Container>;
const podLabels = deployment.spec.template.metadata.labels;
const agentNamespace = deployment.metadata.namespace;

/** Whether every label of `selector` is on `labels` (matchLabels semantics). */
function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function containerPort(ref: string | number): number | undefined {
  return container.ports.find((p) => p.name === ref || p.containerPort === ref)?.containerPort;
}

/** The agent config embedded in the ConfigMap the Deployment mounts and passes as --config. */
function embeddedConfig(): { raw: unknown; file: string } {
  const args = container.args;
  const configPath = args[args.indexOf("--config") + 1] ?? "";
  const volume = pod.volumes.find((v) =>
    container.volumeMounts.some((m) => m.name === v.name && configPath.startsWith(`${m.mountPath}/`)),
  );
  const mount = container.volumeMounts.find((m) => m.name === volume?.name);
  const item = volume?.configMap?.items.find((i) => `${mount?.mountPath}/${i.path}` === configPath);
  expect(item, `--config ${configPath} comes from a ConfigMap item`).toBeDefined();
  const cm = z
    .object({ data: z.record(z.string(), z.string()) })
    .parse(one("ConfigMap", volume?.configMap?.name ?? "").raw);
  const text = cm.data[item?.key ?? ""];
  expect(text, `ConfigMap key ${item?.key}`).toBeDefined();
  return { raw: parseYaml(text ?? ""), file: configPath };
}

function agentConfig(): AgentConfig {
  const result = validateAgentConfig(embeddedConfig().raw);
  if (!result.ok) throw new Error(result.problems.map((p) => `${p.path}: ${p.message}`).join("\n"));
  return result.value;
}

/** "group|resource|namespace|verb|name" grants of the Roles/ClusterRoles in one file ("*" = any name). */
function grants(file: string): Set<string> {
  const roles = base.filter((x) => x.file === file && (x.kind === "Role" || x.kind === "ClusterRole"));
  return new Set(
    grantsOf(
      roles.map((o) => ({
        kind: o.kind,
        metadata: { name: o.name, namespace: o.namespace },
        rules: RoleSchema.parse(o.raw).rules,
      })),
    ),
  );
}

describe("agent/deploy kustomize base", () => {
  it("lists files that exist, and every YAML file in the directory is listed", () => {
    for (const f of kustomization.resources) expect(existsSync(join(DEPLOY_DIR, f)), f).toBe(true);
    const yamlFiles = readdirSync(DEPLOY_DIR).filter((f) => /\.ya?ml$/.test(f) && f !== "kustomization.yaml");
    expect([...yamlFiles].sort()).toEqual([...kustomization.resources].sort());
    expect(base.length).toBeGreaterThan(10);
  });

  it("validates every object against the Kubernetes object schemas (kubernetes-models)", () => {
    expect(base.map(schemaProblem).filter((p) => p !== undefined)).toEqual([]);
  });

  it("would catch a schema error: a string containerPort is rejected", () => {
    const broken = structuredClone(one("Deployment").raw);
    const ports = z
      .object({
        spec: z.object({
          template: z.object({
            spec: z.object({ containers: z.array(z.object({ ports: z.array(z.record(z.string(), z.unknown())) })) }),
          }),
        }),
      })
      .parse(broken).spec.template.spec.containers[0]?.ports;
    // zod returns copies: write into the clone itself.
    const target = (broken.spec as { template: { spec: { containers: { ports: Record<string, unknown>[] }[] } } })
      .template.spec.containers[0]?.ports[0];
    expect(ports?.length).toBeGreaterThan(0);
    if (target) target.containerPort = "eighty";
    expect(schemaProblem({ ...one("Deployment"), raw: broken })).toMatch(/containerPort/);
  });

  it("has unique kind/namespace/name triples and puts the agent's objects in its Namespace", () => {
    const keys = base.map((o) => `${o.kind}/${o.namespace ?? ""}/${o.name}`);
    expect(new Set(keys).size).toBe(keys.length);
    const ns = one("Namespace");
    expect(agentNamespace).toBe(ns.name);
    for (const kind of ["ServiceAccount", "ConfigMap", "Service", "PodDisruptionBudget", "NetworkPolicy", "Ingress"])
      expect(one(kind).namespace, kind).toBe(ns.name);
  });

  it("runs two replicas whose selector matches the pod labels, under the ServiceAccount it defines", () => {
    expect(deployment.spec.replicas).toBe(2);
    expect(selects(deployment.spec.selector.matchLabels, podLabels)).toBe(true);
    const sa = one("ServiceAccount", pod.serviceAccountName);
    expect(sa.namespace).toBe(agentNamespace);
  });

  it("selects the Deployment's pods from the Service, the PodDisruptionBudget and the NetworkPolicy", () => {
    const svc = ServiceSchema.parse(one("Service").raw);
    expect(selects(svc.spec.selector, podLabels)).toBe(true);
    for (const p of svc.spec.ports) expect(containerPort(p.targetPort), `Service port ${p.name}`).toBeDefined();

    const pdb = z
      .object({ spec: z.object({ minAvailable: z.number(), selector: LabelSelector }) })
      .parse(one("PodDisruptionBudget").raw);
    expect(selects(pdb.spec.selector.matchLabels, podLabels)).toBe(true);
    expect(pdb.spec.minAvailable).toBeLessThan(deployment.spec.replicas);

    const np = z
      .object({
        spec: z.object({
          podSelector: LabelSelector,
          policyTypes: z.array(z.string()),
          ingress: z.array(z.object({ ports: z.array(z.object({ port: PortRef })) })),
        }),
      })
      .parse(one("NetworkPolicy").raw);
    expect(selects(np.spec.podSelector.matchLabels, podLabels)).toBe(true);
    expect(np.spec.policyTypes.sort()).toEqual(["Egress", "Ingress"]);
    // Ingress only to the agent port.
    for (const rule of np.spec.ingress)
      for (const p of rule.ports) expect(containerPort(p.port)).toBe(containerPort("http"));
  });

  it("routes the example Ingress to the Service's port, publishing only /v1/actions and its approvals", () => {
    const ing = z
      .object({
        spec: z.object({
          rules: z.array(
            z.object({
              http: z.object({
                paths: z.array(
                  z.object({
                    path: z.string(),
                    pathType: z.string(),
                    backend: z.object({
                      service: z.object({ name: z.string(), port: z.object({ name: z.string() }) }),
                    }),
                  }),
                ),
              }),
            }),
          ),
        }),
      })
      .parse(one("Ingress").raw);
    const svc = one("Service");
    const svcPorts = ServiceSchema.parse(svc.raw).spec.ports.map((p) => p.name);
    const paths = ing.spec.rules.flatMap((r) => r.http.paths);
    // POST /v1/actions and a plan's approvals only; GET /v1/actions/:id stays inside the cluster
    // (design §6, §11.6). Anchored regexes: ingress-nginx's use-regex makes every path one.
    expect(paths.map((p) => [p.path, p.pathType])).toEqual([
      ["^/v1/actions$", "ImplementationSpecific"],
      ["^/v1/actions/[^/]+/approvals$", "ImplementationSpecific"],
    ]);
    const published = (path: string) => paths.some((p) => new RegExp(p.path).test(path));
    for (const path of ["/v1/actions", "/v1/actions/egress-gw:3/approvals"]) expect(published(path), path).toBe(true);
    for (const path of ["/v1/actions/egress-gw:3", "/v1/actions/", "/v1/actions/a/approvals/b", "/metrics", "/healthz"])
      expect(published(path), path).toBe(false);
    for (const p of paths) {
      expect(p.backend.service.name).toBe(svc.name);
      expect(svcPorts).toContain(p.backend.service.port.name);
    }
  });

  it("probes /readyz and /healthz on the container port, and runs locked down", () => {
    expect(container.readinessProbe.httpGet.path).toBe("/readyz");
    expect(container.livenessProbe.httpGet.path).toBe("/healthz");
    expect(containerPort(container.readinessProbe.httpGet.port)).toBe(8788);
    expect(containerPort(container.livenessProbe.httpGet.port)).toBe(8788);
    expect(container.securityContext.capabilities.drop).toEqual(["ALL"]);
    expect(pod.securityContext.seccompProfile.type).toBe("RuntimeDefault");
    expect(container.resources.requests.memory).toBeDefined();
    expect(container.resources.limits.memory).toBeDefined();
    // Every mount has a volume; the image name is the one kustomize rewrites.
    for (const m of container.volumeMounts) expect(pod.volumes.map((v) => v.name)).toContain(m.name);
    expect(kustomization.images?.map((i) => i.name)).toContain(container.image);
  });

  it("carries an agent config that validates with validateAgentConfig and listens on the container port", () => {
    const config = agentConfig();
    const [host, port] = [config.listen.slice(0, config.listen.lastIndexOf(":")), config.listen.split(":").pop()];
    expect(host).toBe("0.0.0.0"); // reachable through the Service, not only on loopback
    expect(Number(port)).toBe(containerPort("http"));
    expect(config.namespace).toBe(agentNamespace);
    expect(config.kubeconfig).toBeUndefined(); // in-cluster: the ServiceAccount token
    expect(Object.keys(config.targets).length).toBeGreaterThan(0);
  });

  it("would catch an invalid embedded config", () => {
    const { raw } = embeddedConfig();
    const broken = { ...(raw as Record<string, unknown>), reportUrl: "not a url" };
    const result = validateAgentConfig(broken);
    expect(result.ok).toBe(false);
  });

  it("gives the container every secret the agent and its targets name, from Secret references", () => {
    const config = agentConfig();
    const named = new Set(["TURNOUT_AGENT_SECRET", "TURNOUT_AGENT_SECRET_NEXT"]);
    for (const t of Object.values(config.targets)) {
      if (t.kind !== "dns-flip") continue;
      named.add(t.provider.type === "rfc2136" ? t.provider.tsig.secretEnv : t.provider.tokenEnv);
    }
    const env = new Map(container.env.map((e) => [e.name, e.valueFrom?.secretKeyRef]));
    for (const name of named) expect(env.get(name), `env ${name} from a Secret`).toBeDefined();
    // The current secret is required (the pod must not start without it); the next one is optional.
    expect(env.get("TURNOUT_AGENT_SECRET")?.optional ?? false).toBe(false);
    expect(env.get("TURNOUT_AGENT_SECRET_NEXT")?.optional).toBe(true);
    // etcd TLS files live under a mounted Secret volume.
    for (const t of Object.values(config.targets)) {
      if (t.kind !== "etcd-sync-teardown" || !t.etcd.tls) continue;
      for (const f of Object.values(t.etcd.tls)) {
        const mount = container.volumeMounts.find((m) => f.startsWith(`${m.mountPath}/`));
        expect(pod.volumes.find((v) => v.name === mount?.name)?.secret, f).toBeDefined();
      }
    }
  });

  it("binds every Role and ClusterRole, by the same name, to the ServiceAccount and nothing else", () => {
    const sa = one("ServiceAccount");
    const roles = base.filter((o) => o.kind === "Role" || o.kind === "ClusterRole");
    const bindings = base.filter((o) => o.kind === "RoleBinding" || o.kind === "ClusterRoleBinding");
    expect(bindings.map((b) => `${b.namespace}/${b.name}`).sort()).toEqual(
      roles.map((r) => `${r.namespace}/${r.name}`).sort(),
    );
    for (const b of bindings) {
      const binding = BindingSchema.parse(b.raw);
      const role = roles.find((r) => r.kind === binding.roleRef.kind && r.name === binding.roleRef.name);
      expect(role, `${b.name} → ${binding.roleRef.kind} ${binding.roleRef.name}`).toBeDefined();
      if (binding.roleRef.kind === "Role") expect(role?.namespace).toBe(b.namespace);
      expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: sa.name, namespace: sa.namespace }]);
    }
  });

  it("grants no wildcard and nothing cluster-wide but StaticRoutes and node-fence's nodes, pods and VolumeAttachments", () => {
    for (const o of base.filter((x) => x.kind === "Role" || x.kind === "ClusterRole"))
      for (const r of RoleSchema.parse(o.raw).rules) {
        expect([...r.verbs, ...r.resources, ...r.apiGroups]).not.toContain("*");
        if (o.kind !== "ClusterRole") continue;
        if (o.file === "rbac-node-fence.yaml") {
          // Node fencing is cluster-scoped by nature (the manifest says why); it writes only nodes.
          expect(["nodes", "pods", "volumeattachments"]).toEqual(expect.arrayContaining(r.resources));
          if (!r.resources.includes("nodes")) expect(r.verbs).toEqual(["list", "watch"]);
        } else expect(r.resources).toEqual(["staticroutes"]);
      }
    expect(
      base.some(
        (o) => o.kind === "Role" && RoleSchema.parse(o.raw).rules.some((r) => r.resources.includes("namespaces")),
      ),
    ).toBe(false);
  });

  it("grants the Lease and action-memory verbs in the agent's namespace, by name where Kubernetes allows", () => {
    const g = [...grants("rbac.yaml")].filter((p) => p.split("|")[2] === agentNamespace);
    const config = agentConfig();
    const ns = agentNamespace;
    const want = [
      ...["get", "update"].map((v) => `coordination.k8s.io|leases|${ns}|${v}|${config.lease.name}`),
      `coordination.k8s.io|leases|${ns}|create|*`,
      // One action-memory ConfigMap per configured target (agent/memory.ts configMapName).
      ...Object.keys(config.targets).flatMap((t) =>
        ["get", "update"].map((v) => `|configmaps|${ns}|${v}|turnout-${t}`),
      ),
      `|configmaps|${ns}|create|*`,
    ];
    expect(g.sort()).toEqual(want.sort());
  });

  it("grants StaticRoute get/patch/delete only for the routes the route-swap targets name", () => {
    const names = Object.values(agentConfig().targets).flatMap((t) =>
      t.kind === "route-swap" ? [t.routes.primary.name, t.routes.secondary.name] : [],
    );
    const g = [...grants("rbac.yaml")].filter((p) => p.includes("|staticroutes|"));
    const want = [
      ...names.flatMap((n) =>
        ["get", "patch", "delete"].map((v) => `networking.digitalocean.com|staticroutes|*|${v}|${n}`),
      ),
      "networking.digitalocean.com|staticroutes|*|create|*",
    ];
    expect(g.sort()).toEqual([...new Set(want)].sort());
  });

  it("grants route-swap its operator reads in each route-swap target's operator namespace", () => {
    const g = grants("rbac.yaml");
    for (const t of Object.values(agentConfig().targets)) {
      if (t.kind !== "route-swap") continue;
      expect(g).toContain(`apps|daemonsets|${t.operator.namespace}|get|*`);
      expect(g).toContain(`|pods|${t.operator.namespace}|list|*`);
    }
  });

  it("grants dns-flip exactly the CoreDNS ConfigMap reads its targets' coredns checks make", () => {
    const want = new Set<string>();
    for (const t of Object.values(agentConfig().targets))
      if (t.kind === "dns-flip" && t.coredns) want.add(`|configmaps|${t.coredns.namespace}|get|${t.coredns.configMap}`);
    expect([...grants("rbac-dns-flip.yaml")].sort()).toEqual([...want].sort());
  });

  it("grants etcd-sync-teardown exactly the workload verbs its targets need (agent/executors/etcd-sync-teardown.ts)", () => {
    const want = new Set<string>();
    for (const t of Object.values(agentConfig().targets)) {
      if (t.kind !== "etcd-sync-teardown") continue;
      const { namespace, name, action } = t.sync;
      // stop-sync: read the synchronizer, scale it to 0 (the scale subresource) or delete it,
      // list its pods.
      want.add(`apps|deployments|${namespace}|get|${name}`);
      want.add(
        action === "delete"
          ? `apps|deployments|${namespace}|delete|${name}`
          : `apps|deployments/scale|${namespace}|patch|${name}`,
      );
      want.add(`|pods|${namespace}|list|*`);
      // restart: read each workload and patch its pod template (rollout restart).
      for (const w of t.restart) {
        const resource = `${w.kind.toLowerCase()}s`;
        want.add(`apps|${resource}|${w.namespace}|get|${w.name}`);
        want.add(`apps|${resource}|${w.namespace}|patch|${w.name}`);
      }
    }
    expect([...grants("rbac-etcd-sync-teardown.yaml")].sort()).toEqual([...want].sort());
  });

  it("grants node-fence its cluster-wide node, pod and VolumeAttachment access and reads of exactly the named workloads", () => {
    const targets = Object.values(agentConfig().targets).filter((t) => t.kind === "node-fence");
    expect(targets.length).toBeGreaterThan(0);
    const want = new Set([
      ...["get", "list", "watch", "patch"].map((v) => `|nodes|*|${v}|*`),
      ...["list", "watch"].map((v) => `|pods|*|${v}|*`),
      ...["list", "watch"].map((v) => `storage.k8s.io|volumeattachments|*|${v}|*`),
    ]);
    for (const t of targets)
      for (const w of t.workloads) want.add(`apps|${w.kind.toLowerCase()}s|${w.namespace}|get|${w.name}`);
    expect([...grants("rbac-node-fence.yaml")].sort()).toEqual([...want].sort());
  });
});
