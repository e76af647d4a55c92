/**
 * Configuration schemas (design §8) for the worker (`TURNOUT_CONFIG` / `turnout.config.json`) and
 * the agent (`--config` / `TURNOUT_AGENT_CONFIG`). Policy defaults are those of design §5.
 * Every problem is reported as `path: message` by {@link formatIssues}.
 */
import { z } from "zod";
import { parseKubeJsonPath } from "./kube-jsonpath.ts";
import { parseMatcher } from "./matchers.ts";
import { NotifySchema } from "./notify-config.ts";

export const SIDES = ["primary", "secondary"] as const;
export const SideSchema = z.enum(SIDES);
export type Side = z.infer<typeof SideSchema>;

/** The other side of a target. */
export function otherSide(side: Side): Side {
  return side === "primary" ? "secondary" : "primary";
}

/**
 * The entry of a config's `targets` record named `name`, or undefined. Own keys only: a name such
 * as `constructor` from a request must not find a member of Object.prototype.
 */
export function ownTarget<T>(targets: Record<string, T>, name: string): T | undefined {
  return Object.hasOwn(targets, name) ? targets[name] : undefined;
}

const TargetName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "target names are lower-case letters, digits and '-', at most 63 characters");

const MatcherText = z.string().superRefine((text, ctx) => {
  try {
    parseMatcher(text);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
  }
});
const MatcherList = z.array(MatcherText).min(1, "a matcher list needs at least one matcher");

export const SideMatchSchema = z
  .object({
    matchers: MatcherList.optional(),
    anyOf: z.array(MatcherList).min(1).optional(),
  })
  .strict()
  .refine((s) => s.matchers !== undefined || s.anyOf !== undefined, "give `matchers` or `anyOf`");
export type SideMatch = z.infer<typeof SideMatchSchema>;

const seconds = (def: number) => z.number().int().min(0).default(def);

/** Safety policy per target; defaults from design §5. */
export const PolicySchema = z
  .object({
    holdSeconds: seconds(30),
    // There are two kinds of source (Alertmanager, Nagios/Icinga): a quorum of 3 could never be
    // met and would silently disable failover.
    quorum: z
      .number()
      .int()
      .min(1)
      .max(2, "quorum counts distinct kinds of source and there are two (alertmanager, nagios)")
      .default(1),
    cooldownSeconds: seconds(600),
    approval: z.enum(["auto", "required"]).default("auto"),
    approvalTimeoutSeconds: z.number().int().min(1).default(900),
    failback: z.enum(["manual", "auto"]).default("manual"),
    failbackAfterSeconds: seconds(300),
    flap: z
      .object({
        windowSeconds: z.number().int().min(1).default(600),
        maxTransitions: z.number().int().min(1).default(4),
      })
      .strict()
      .prefault({}),
    maxAutoActionsPerDay: z.number().int().min(0).default(2),
    actionTimeoutSeconds: z.number().int().min(1).default(600),
    dispatchRetries: z.number().int().min(0).default(5),
    /**
     * A firing signal not seen again for this long stops counting as down evidence (design §4);
     * twice Alertmanager's default `repeat_interval`. 0 never expires.
     */
    staleAfterSeconds: seconds(28800),
    /** How long a side that was down must be up before it is a failover destination (rule 14); default `holdSeconds`. */
    riseSeconds: z.number().int().min(0).optional(),
    /**
     * Block an automatic failover (`not-ready`) when the destination was not ready at the start of
     * the hold (design §11.3); readiness that is unknown never blocks, and a manual command still goes.
     * @default false
     */
    requireReady: z.boolean().default(false),
  })
  .strict()
  .prefault({});
export type Policy = z.infer<typeof PolicySchema>;

/** Cron syntax accepted by Cloudflare cron triggers: five fields. */
const CronText = z
  .string()
  .regex(/^\s*(\S+\s+){4}\S+\s*$/, "a cron expression has five fields (minute hour day-of-month month day-of-week)");

export const DrillSchema = z
  .object({
    cron: CronText,
    mode: z.enum(["dry-run", "live"]).default("dry-run"),
    holdSeconds: z.number().int().min(0).default(60),
  })
  .strict();

/** An agent's name (design §11.1): a DNS label, as `AgentNameSchema` in protocol.ts spells it. */
const AgentName = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "expected a DNS label, e.g. agent-a");

/** The agent named by a config's single `agent` key, and by a side that names none (design §11.1). */
export const DEFAULT_AGENT_NAME = "default";

/** A side's matchers and, optionally, the agent that executes actions toward it (design §11.1). */
const WorkerSideSchema = z
  .object({
    matchers: MatcherList.optional(),
    anyOf: z.array(MatcherList).min(1).optional(),
    /** The agent that runs every action whose `to` is this side. @default "default" */
    agent: AgentName.optional(),
  })
  .strict()
  .refine((s) => s.matchers !== undefined || s.anyOf !== undefined, "give `matchers` or `anyOf`");

export const WorkerTargetSchema = z
  .object({
    sides: z.object({ primary: WorkerSideSchema, secondary: WorkerSideSchema }).strict(),
    policy: PolicySchema,
    drill: DrillSchema.optional(),
    /** The side that carries traffic when the target is first seen; editing it later never switches (rule 15). */
    initialActiveSide: SideSchema.default("primary"),
    /** Keep every verified ingest body routed to this target, for `npm run simulate` (design §10). */
    record: z.boolean().default(false),
    /** Paging and outgoing events for this target (design §11.4), sink by sink over the global `notify`. */
    notify: NotifySchema.optional(),
  })
  .strict();
export type WorkerTarget = z.infer<typeof WorkerTargetSchema>;

/** A Slack channel id: `C…` (public), `G…` (private) or `D…` (direct message), never a name. */
const SlackChannelId = z
  .string()
  .regex(/^[CGD][A-Z0-9]{2,}$/, "expected a channel id such as C012AB3CD (channel names are not accepted)");

/** A config file's `"$schema"`: the JSON Schema editors check it against (schema/*.schema.json); turnout ignores it. */
const JsonSchemaRef = z.string().min(1).optional();

/** How the worker reaches one agent (design §6): its URL and transport. */
const AgentEndpointFields = {
  url: z.url({ protocol: /^https?$/ }),
  transport: z.enum(["direct", "qstash"]).default("direct"),
  qstash: z
    .object({
      baseUrl: z.url().default("https://qstash.upstash.io"),
      retries: z.number().int().min(0).max(10).default(3),
    })
    .strict()
    .prefault({}),
};

/** One entry of `agents` (design §11.1): where it is, when it is silent, and the mode its heartbeats must say. */
export const AgentEntrySchema = z
  .object({
    ...AgentEndpointFields,
    /** An agent whose leader has not been heard for this long is silent (rule 17). @default 60 */
    silentAfterSeconds: z.number().int().min(1).default(60),
    /**
     * The mode its heartbeats must report; otherwise its sides are not ready (`agent-mode`), so a
     * production agent that fell back to the sandbox never looks fine. @default "cluster"
     */
    mode: z.enum(["sandbox", "cluster"]).default("cluster"),
  })
  .strict();
export type AgentEntry = z.infer<typeof AgentEntrySchema>;

export const WorkerConfigSchema = z
  .object({
    $schema: JsonSchemaRef,
    /** The single agent of a one-cluster setup: the agent named `default` (design §11.1). Give `agent` or `agents`, not both. */
    agent: z.object(AgentEndpointFields).strict().optional(),
    /** Every agent by name (design §11.1); sides name theirs with `sides.<side>.agent`. */
    agents: z.record(AgentName, AgentEntrySchema).optional(),
    targets: z.record(TargetName, WorkerTargetSchema),
    chatops: z
      .object({
        slack: z
          .object({
            allowedUsers: z.array(z.string().min(1)).default([]),
            /**
             * Channel ids only (`C…`, `G…`, `D…`): a channel's name can be changed by its members,
             * and a new channel can take a freed name, so names would let people grant themselves.
             */
            allowedChannels: z.array(SlackChannelId).optional(),
            /** Channel id (`C…`) for notifications through the bot token (`SLACK_BOT_TOKEN`), threaded per incident. */
            notifyChannel: SlackChannelId.optional(),
            /** The Slack workspace (team id, `T…`); set, commands and clicks from any other workspace are refused. */
            teamId: z
              .string()
              .regex(/^[TE][A-Z0-9]{2,}$/, "expected a Slack team id such as T012AB3CD")
              .optional(),
          })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    /** Public URL of the status page, used in notification links. */
    statusUrl: z.url().optional(),
    /** Cloudflare Access in front of the worker (design §3a): whose `Cf-Access-Jwt-Assertion` is trusted, and roles by email. */
    access: z
      .object({
        teamDomain: z
          .string()
          .regex(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/, "the team's domain, e.g. myteam.cloudflareaccess.com (no scheme)"),
        audience: z.string().min(1, "the application's AUD tag"),
        roles: z.record(
          z.string().regex(/^([^@\s]+|\*)@[^@\s]+$/, 'an email, or "*@<domain>" for everyone at a domain'),
          z.enum(["viewer", "operator"]),
        ),
      })
      .strict()
      .optional(),
    /** How much history each target keeps (design §4). */
    retention: z
      .object({
        resolvedSignalDays: z.number().int().min(1).default(7),
        eventsPerTarget: z.number().int().min(100).default(10_000),
      })
      .strict()
      .prefault({}),
    /** The worker's own public base URL; QStash's failure callback is sent to `<publicUrl>/v1/agent/reports/qstash-failure`. */
    publicUrl: z.url().optional(),
    /** Readiness as the worker reads it (design §11.3). */
    readiness: z
      .object({
        /**
         * The agents' evaluation interval: a result older than twice this is `unknown` (shown, never
         * blocking). Set it to the agents' `readiness.intervalSeconds`.
         * @default 300
         */
        intervalSeconds: z.number().int().min(10).default(300),
      })
      .strict()
      .prefault({}),
    /** Paging (PagerDuty, Opsgenie) and signed CloudEvents webhooks (design §11.4). */
    notify: NotifySchema.optional(),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    if (cfg.agent && cfg.agents) {
      ctx.addIssue({
        code: "custom",
        path: ["agents"],
        message: "give `agent` (the single agent, named default) or `agents`, not both",
      });
    }
    if (!cfg.agent && !cfg.agents) {
      ctx.addIssue({ code: "custom", path: ["agents"], message: "name at least one agent (`agents`, or `agent`)" });
    }
    const agents = agentsOf(cfg as WorkerConfig);
    for (const [name, target] of Object.entries(cfg.targets)) {
      for (const side of SIDES) {
        const agent = target.sides[side].agent ?? DEFAULT_AGENT_NAME;
        if (Object.hasOwn(agents, agent)) continue;
        ctx.addIssue({
          code: "custom",
          path: ["targets", name, "sides", side, "agent"],
          message: `names agent ${JSON.stringify(agent)}, which \`agents\` lacks (known: ${Object.keys(agents).join(", ") || "none"})`,
        });
      }
    }
    if (!cfg.publicUrl) {
      for (const [name, agent] of Object.entries(agents)) {
        if (agent.transport !== "qstash") continue;
        ctx.addIssue({
          code: "custom",
          path: ["publicUrl"],
          message: `required with agent transport "qstash" (agent ${name}: QStash's failure callback must reach the worker)`,
        });
        break;
      }
    }
  });
export type WorkerConfig = z.infer<typeof WorkerConfigSchema>;

/**
 * Every agent of a worker config by name: `agents`, or the single `agent` as `default` with the
 * entry defaults (design §11.1), so the rest of the worker knows one shape.
 */
export function agentsOf(config: Pick<WorkerConfig, "agent" | "agents">): Record<string, AgentEntry> {
  if (config.agents) return config.agents;
  if (!config.agent) return {};
  return { [DEFAULT_AGENT_NAME]: { ...config.agent, silentAfterSeconds: 60, mode: "cluster" } };
}

/** The agent a side's actions go to (design §11.1): `sides.<side>.agent`, else `default`. */
export function sideAgent(target: Pick<WorkerTarget, "sides">, side: Side): string {
  return target.sides[side].agent ?? DEFAULT_AGENT_NAME;
}

/** Which sides of which targets the config sends `agent` (the heartbeat answer's `serves`). */
export function servedBy(config: Pick<WorkerConfig, "targets">, agent: string): Record<string, Side[]> {
  const out: Record<string, Side[]> = {};
  for (const name of Object.keys(config.targets).sort()) {
    const target = config.targets[name];
    if (!target) continue;
    const sides = SIDES.filter((side) => sideAgent(target, side) === agent);
    if (sides.length > 0) out[name] = sides;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Agent

const ipv4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HostPort = z.string().regex(/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/, "expected host:port");
const K8sName = z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, "a Kubernetes object name (RFC 1123)");

export const StaticRouteSpecSchema = z
  .object({
    name: K8sName,
    destinations: z.array(z.string().min(1)).min(1),
    gateway: z.string().regex(ipv4, "gateway must be an IPv4 address"),
  })
  .strict();
export type StaticRouteSpec = z.infer<typeof StaticRouteSpecSchema>;

export const RouteSwapTargetSchema = z
  .object({
    kind: z.literal("route-swap"),
    routes: z.object({ primary: StaticRouteSpecSchema, secondary: StaticRouteSpecSchema }).strict(),
    operator: z
      .object({
        namespace: K8sName.default("static-routes"),
        daemonSet: K8sName.default("k8s-staticroute-operator"),
      })
      .strict()
      .prefault({}),
    settleSeconds: z.number().positive().default(60),
    egressCheck: z
      .object({
        url: z.url(),
        expect: z.object({ primary: z.string().min(1), secondary: z.string().min(1) }).strict(),
        timeoutSeconds: z.number().positive().default(10),
      })
      .strict()
      .optional(),
  })
  .strict();

const TsigSchema = z
  .object({
    name: z.string().min(1),
    algorithm: z.literal("hmac-sha256").default("hmac-sha256"),
    secretEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name"),
  })
  .strict();

export const DnsProviderSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("rfc2136"), server: HostPort, zone: z.string().min(1), tsig: TsigSchema }).strict(),
  z
    .object({
      type: z.literal("cloudflare"),
      zoneId: z.string().min(1),
      tokenEnv: z.string().min(1),
      baseUrl: z.url().optional(),
    })
    .strict(),
  z
    .object({
      type: z.literal("digitalocean"),
      domain: z.string().min(1),
      tokenEnv: z.string().min(1),
      baseUrl: z.url().optional(),
    })
    .strict(),
]);
export type DnsProviderConfig = z.infer<typeof DnsProviderSchema>;

export const DnsFlipTargetSchema = z
  .object({
    kind: z.literal("dns-flip"),
    provider: DnsProviderSchema,
    record: z
      .object({
        name: z.string().min(1),
        type: z.enum(["A", "AAAA", "CNAME"]).default("A"),
        ttl: z.number().int().min(0).default(60),
      })
      .strict(),
    values: z
      .object({ primary: z.array(z.string().min(1)).min(1), secondary: z.array(z.string().min(1)).min(1) })
      .strict(),
    verify: z
      .object({ servers: z.array(HostPort).default([]), timeoutSeconds: z.number().positive().default(10) })
      .strict()
      .prefault({}),
    coredns: z
      .object({ namespace: K8sName.default("kube-system"), configMap: K8sName.default("coredns") })
      .strict()
      .optional(),
  })
  .strict();

const EtcdEndpoints = z.object({ endpoints: z.array(z.url()).min(1) }).strict();

export const EtcdSyncTeardownTargetSchema = z
  .object({
    kind: z.literal("etcd-sync-teardown"),
    etcd: z
      .object({
        primary: EtcdEndpoints,
        standby: EtcdEndpoints,
        prefixes: z.array(z.string().min(1)).min(1),
        excludePrefixes: z.array(z.string().min(1)).default([]),
        heartbeat: z
          .object({
            key: z.string().min(1),
            maxLagSeconds: z.number().positive().default(30),
            write: z.boolean().default(false),
          })
          .strict()
          .optional(),
        maxMissedKeys: z.number().int().min(0).default(0),
        tls: z
          .object({ caFile: z.string().min(1), certFile: z.string().min(1), keyFile: z.string().min(1) })
          .strict()
          .optional(),
      })
      .strict(),
    sync: z
      .object({
        kind: z.literal("Deployment").default("Deployment"),
        namespace: K8sName,
        name: K8sName,
        action: z.enum(["scale-to-zero", "delete"]).default("scale-to-zero"),
      })
      .strict(),
    dns: TargetName,
    restart: z
      .array(
        z
          .object({ kind: z.enum(["Deployment", "StatefulSet", "DaemonSet"]), namespace: K8sName, name: K8sName })
          .strict(),
      )
      .default([]),
    followUps: z.array(z.string().min(1)).default([]),
    allowUnverified: z.boolean().default(false),
    restartTimeoutSeconds: z.number().positive().default(300),
  })
  .strict();

/** One equality term of a label selector: `key=value` (label key and value syntax of Kubernetes). */
const SELECTOR_TERM =
  /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?=([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/**
 * A node group's label selector: equality terms joined by commas (`topology.kubernetes.io/zone=dc-1`).
 * Set-based terms are not accepted: a group must be named by what its nodes are, not by what they
 * are not, or a mislabelled node would silently join the group that gets fenced.
 */
const NodeSelectorText = z
  .string()
  .refine(
    (s) => s.split(",").every((t) => SELECTOR_TERM.test(t.trim())),
    "expected key=value label terms joined by commas, e.g. topology.kubernetes.io/zone=dc-1",
  );

export const NodeFenceTargetSchema = z
  .object({
    kind: z.literal("node-fence"),
    nodes: z
      .object({
        primary: z.object({ selector: NodeSelectorText }).strict(),
        secondary: z.object({ selector: NodeSelectorText }).strict(),
      })
      .strict()
      .refine((n) => n.primary.selector !== n.secondary.selector, {
        message: "primary and secondary must select different node groups",
        path: ["secondary", "selector"],
      }),
    /** How long every node of the group being left must have been NotReady (by the API's lastTransitionTime). */
    notReadySeconds: z.number().int().min(0).default(60),
    /** The most of the cluster's nodes that may carry the out-of-service taint at once. */
    maxFenceFraction: z.number().gt(0).max(1).default(0.5),
    /** Bound on each wait (pods gone, workloads Ready, returning nodes Ready). */
    settleSeconds: z.number().positive().default(300),
    workloads: z
      .array(z.object({ kind: z.enum(["Deployment", "StatefulSet"]), namespace: K8sName, name: K8sName }).strict())
      .default([]),
  })
  .strict();

// ---------------------------------------------------------------------------------------------
// Plans (design §11.2): a team's own runbook from verified steps.

const EnvVarName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name");
const StepName = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "step names are lower-case letters, digits and '-' (a DNS label)");
/** `{"<JSONPath>": value}`: each path selects exactly one value, compared as JSON. */
const JsonPathValues = z.record(z.string(), z.json()).superRefine((values, ctx) => {
  for (const path of Object.keys(values)) {
    const parsed = parseKubeJsonPath(path);
    if (!parsed.ok) ctx.addIssue({ code: "custom", path: [path], message: parsed.message });
  }
});
const bySide = <T extends z.ZodType>(value: T) => z.object({ primary: value, secondary: value }).strict();
const WorkloadRef = z
  .object({ kind: z.enum(["Deployment", "StatefulSet", "DaemonSet"]), namespace: K8sName, name: K8sName })
  .strict();
const ApiVersion = z.string().regex(/^([a-z0-9.-]+\/)?v[0-9]+((alpha|beta)[0-9]+)?$/, "expected group/version or v1");
const KindName = z.string().regex(/^[A-Z][A-Za-z0-9]*$/, "a Kubernetes kind, e.g. HTTPRoute");

const WaitForSchema = z.union([
  z
    .object({ condition: z.object({ type: z.string().min(1), status: z.enum(["True", "False", "Unknown"]) }).strict() })
    .strict(),
  JsonPathValues,
]);

/** The object a `kube` step or a `kube` check names. */
const KubeObjectRef = {
  apiVersion: ApiVersion,
  kind: KindName,
  namespace: K8sName.optional(),
  name: K8sName,
};

const JsonPatchOp = z
  .object({
    op: z.enum(["add", "remove", "replace", "move", "copy", "test"]),
    path: z.string().startsWith("/", "a JSON Pointer starting with /"),
    value: z.json().optional(),
    from: z.string().optional(),
  })
  .strict();

export const KubeStepSchema = z
  .object({
    ...KubeObjectRef,
    patch: bySide(z.union([z.array(JsonPatchOp), z.record(z.string(), z.json())])),
    patchType: z.enum(["merge", "json", "apply"]).default("merge"),
    expect: bySide(JsonPathValues).optional(),
    waitFor: WaitForSchema.optional(),
  })
  .strict()
  .superRefine((step, ctx) => {
    for (const side of SIDES) {
      const patch = step.patch[side];
      const isOps = Array.isArray(patch);
      if ((step.patchType === "json") !== isOps) {
        ctx.addIssue({
          code: "custom",
          path: ["patch", side],
          message:
            step.patchType === "json"
              ? 'patchType "json" takes a list of JSON Patch operations'
              : `patchType "${step.patchType}" takes an object`,
        });
        continue;
      }
      // Without `expect`, an add/remove/move/copy list is not convergent: run twice, it does twice.
      if (isOps && !step.expect) {
        patch.forEach((op, i) => {
          if (op.op !== "replace" && op.op !== "test") {
            ctx.addIssue({
              code: "custom",
              path: ["patch", side, i, "op"],
              message: `patchType "json" needs \`expect\`, or only replace and test operations (found ${op.op})`,
            });
          }
        });
      }
    }
  });

export const ScaleStepSchema = z
  .object({
    kind: z.enum(["Deployment", "StatefulSet"]),
    namespace: K8sName,
    name: K8sName,
    replicas: bySide(z.number().int().min(0)),
  })
  .strict();

export const CheckStepSchema = z
  .object({
    kube: z
      .object({ ...KubeObjectRef, waitFor: WaitForSchema })
      .strict()
      .optional(),
    http: z
      .object({
        url: z.url(),
        expectStatus: z.number().int().min(100).max(599).default(200),
        expectBody: z.string().optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((c) => (c.kube === undefined) !== (c.http === undefined), "give exactly one of `kube` or `http`");

export const HttpStepSchema = z
  .object({
    method: z.enum(["GET", "POST", "PUT", "PATCH", "DELETE"]).default("POST"),
    url: z.url(),
    headers: z.record(z.string().min(1), z.string()).default({}),
    headersEnv: z.record(z.string().min(1), EnvVarName).default({}),
    body: bySide(z.json()).optional(),
    expectStatus: z.number().int().min(100).max(599).default(200),
  })
  .strict();

/** The step kinds of design §11.2, in the order docs list them. */
export const PLAN_STEP_KINDS = [
  "routeSwap",
  "dnsFlip",
  "etcdSyncTeardown",
  "nodeFence",
  "kube",
  "scale",
  "restart",
  "check",
  "http",
  "wait",
  "approval",
] as const;
export type PlanStepKind = (typeof PLAN_STEP_KINDS)[number];

export const PlanStepSchema = z
  .object({
    name: StepName,
    routeSwap: RouteSwapTargetSchema.omit({ kind: true }).optional(),
    dnsFlip: DnsFlipTargetSchema.omit({ kind: true }).optional(),
    // `dns` names a dns-flip target of this agent, as for the executor; absent, no DNS is flipped
    // (a plan's own dnsFlip step does it).
    etcdSyncTeardown: EtcdSyncTeardownTargetSchema.omit({ kind: true, dns: true })
      .extend({ dns: TargetName.optional() })
      .optional(),
    nodeFence: NodeFenceTargetSchema.omit({ kind: true }).optional(),
    kube: KubeStepSchema.optional(),
    scale: ScaleStepSchema.optional(),
    restart: z
      .object({ workloads: z.array(WorkloadRef).min(1) })
      .strict()
      .optional(),
    check: CheckStepSchema.optional(),
    http: HttpStepSchema.optional(),
    wait: z.object({ seconds: z.number().positive() }).strict().optional(),
    approval: z
      .object({ message: z.string().min(1).max(500) })
      .strict()
      .optional(),
    /** This step always runs as in a drill (writes with dryRun=All), even in a real action. */
    dryRun: z.boolean().default(false),
    timeoutSeconds: z.number().positive().optional(),
    cluster: K8sName.optional(),
    ifUnreachable: z.literal("skip").optional(),
  })
  .strict()
  .superRefine((step, ctx) => {
    const kinds = PLAN_STEP_KINDS.filter((k) => step[k] !== undefined);
    if (kinds.length !== 1) {
      ctx.addIssue({
        code: "custom",
        path: [],
        message: `a step has exactly one kind, one of ${PLAN_STEP_KINDS.join(", ")} (found ${kinds.length ? kinds.join(", ") : "none"})`,
      });
    }
    if (step.ifUnreachable && !step.cluster) {
      ctx.addIssue({
        code: "custom",
        path: ["ifUnreachable"],
        message: "needs `cluster`: only a step on another cluster can find it unreachable",
      });
    }
  });
export type PlanStep = z.infer<typeof PlanStepSchema>;

export const ParallelGroupSchema = z
  .object({
    /** The group's name in reports; default `parallel-<n>`, n its position in the list (from 1). */
    name: StepName.optional(),
    parallel: z.array(PlanStepSchema).min(2, "a parallel group needs at least two steps"),
  })
  .strict();
export type ParallelGroup = z.infer<typeof ParallelGroupSchema>;

const PlanElementSchema = z.union([ParallelGroupSchema, PlanStepSchema]);
export type PlanElement = z.infer<typeof PlanElementSchema>;

export const PlanTargetSchema = z
  .object({
    kind: z.literal("plan"),
    steps: z.array(PlanElementSchema).min(1),
    failbackSteps: z.array(PlanElementSchema).min(1).optional(),
  })
  .strict()
  .superRefine((plan, ctx) => {
    const seen = new Map<string, string>();
    const note = (name: string, path: (string | number)[]) => {
      const where = path.join(".");
      const first = seen.get(name);
      if (first !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: [...path, "name"],
          message: `${JSON.stringify(name)} is used at ${first} too; step and group names are unique in a plan`,
        });
      } else seen.set(name, where);
    };
    for (const list of ["steps", "failbackSteps"] as const) {
      (plan[list] ?? []).forEach((element, i) => {
        if ("parallel" in element) {
          note(element.name ?? parallelGroupName(i), [list, i]);
          element.parallel.forEach((s, j) => {
            note(s.name, [list, i, "parallel", j]);
          });
        } else note(element.name, [list, i]);
      });
    }
  });
export type PlanTarget = z.infer<typeof PlanTargetSchema>;

/** The reported name of the unnamed parallel group at index `i` of its list. */
export function parallelGroupName(i: number): string {
  return `parallel-${i + 1}`;
}

/** Every step of a plan target (both lists, groups flattened), with where it sits. */
export function planSteps(plan: PlanTarget): { step: PlanStep; path: (string | number)[] }[] {
  const out: { step: PlanStep; path: (string | number)[] }[] = [];
  for (const list of ["steps", "failbackSteps"] as const) {
    (plan[list] ?? []).forEach((element, i) => {
      if (!("parallel" in element)) {
        out.push({ step: element, path: [list, i] });
        return;
      }
      element.parallel.forEach((step, j) => {
        out.push({ step, path: [list, i, "parallel", j] });
      });
    });
  }
  return out;
}

export const AgentTargetSchema = z.discriminatedUnion("kind", [
  RouteSwapTargetSchema,
  DnsFlipTargetSchema,
  EtcdSyncTeardownTargetSchema,
  NodeFenceTargetSchema,
  PlanTargetSchema,
]);
export type AgentTarget = z.infer<typeof AgentTargetSchema>;
export type RouteSwapTarget = z.infer<typeof RouteSwapTargetSchema>;
export type DnsFlipTarget = z.infer<typeof DnsFlipTargetSchema>;
export type EtcdSyncTeardownTarget = z.infer<typeof EtcdSyncTeardownTargetSchema>;
export type NodeFenceTarget = z.infer<typeof NodeFenceTargetSchema>;

export const AgentConfigSchema = z
  .object({
    $schema: JsonSchemaRef,
    listen: HostPort.default("127.0.0.1:8788"),
    /** This agent's name (design §11.1): the worker's `agents.<name>`, sent as `Turnout-Agent`. */
    name: AgentName.default(DEFAULT_AGENT_NAME),
    reportUrl: z.url(),
    /** Where heartbeats go; absent, `reportUrl`'s origin with the path `/v1/agent/heartbeats` ({@link agentHeartbeatUrl}). */
    heartbeatUrl: z.url().optional(),
    /** How often every replica sends a heartbeat (design §11.1). */
    heartbeatSeconds: z.number().int().min(1).default(15),
    kubeconfig: z.string().min(1).optional(),
    /** Namespace for the agent's Lease and its durable action memory (ConfigMaps). */
    namespace: K8sName.default("turnout"),
    lease: z
      .object({
        name: K8sName.default("turnout-agent"),
        durationSeconds: z.number().int().min(1).default(15),
        renewSeconds: z.number().positive().default(5),
      })
      .strict()
      .prefault({}),
    qstash: z
      .object({
        /** This agent's `POST /v1/actions` URL as QStash delivers to it: the Upstash-Signature's `sub` must equal it. */
        url: z.url().optional(),
        /**
         * How old a forwarded Turnout-Signature may be on the QStash path, in seconds: QStash
         * retries for hours, past the direct path's 300 s (design §6).
         * @default 86400
         */
        maxAgeSeconds: z.number().int().min(300).default(86_400),
      })
      .strict()
      .optional(),
    /** Readiness (design §11.3): how often each target is checked, read-only, toward each side this agent serves. */
    readiness: z
      .object({
        /**
         * Seconds between evaluation rounds; the worker treats a result older than twice this as unknown.
         * @default 300
         */
        intervalSeconds: z.number().int().min(10).default(300),
      })
      .strict()
      .prefault({}),
    /** Other clusters plan steps act on (design §11.2): `{"<name>": {kubeconfig}}`. */
    clusters: z.record(K8sName, z.object({ kubeconfig: z.string().min(1) }).strict()).default({}),
    targets: z.record(TargetName, AgentTargetSchema),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    for (const [name, target] of Object.entries(cfg.targets)) {
      if (target.kind === "plan") checkPlanReferences(cfg, name, target, ctx);
      if (target.kind !== "etcd-sync-teardown") continue;
      const dns = cfg.targets[target.dns];
      if (dns?.kind !== "dns-flip") {
        ctx.addIssue({
          code: "custom",
          path: ["targets", name, "dns"],
          message: `names ${JSON.stringify(target.dns)}, which is not a dns-flip target of this agent`,
        });
      }
    }
  });
export type AgentConfig = z.infer<typeof AgentConfigSchema>;

/** A plan's references into the rest of the agent config: clusters and dns-flip targets. */
function checkPlanReferences(
  cfg: { clusters: Record<string, unknown>; targets: Record<string, { kind: string }> },
  name: string,
  plan: PlanTarget,
  ctx: z.RefinementCtx,
): void {
  for (const { step, path } of planSteps(plan)) {
    if (step.cluster !== undefined && !Object.hasOwn(cfg.clusters, step.cluster)) {
      ctx.addIssue({
        code: "custom",
        path: ["targets", name, ...path, "cluster"],
        message: `names ${JSON.stringify(step.cluster)}, which \`clusters\` lacks`,
      });
    }
    const dns = step.etcdSyncTeardown?.dns;
    if (dns !== undefined && ownTarget(cfg.targets, dns)?.kind !== "dns-flip") {
      ctx.addIssue({
        code: "custom",
        path: ["targets", name, ...path, "etcdSyncTeardown", "dns"],
        message: `names ${JSON.stringify(dns)}, which is not a dns-flip target of this agent`,
      });
    }
  }
}

/** The agent's heartbeat URL: `heartbeatUrl`, or `reportUrl`'s origin with `/v1/agent/heartbeats` (design §11.1). */
export function agentHeartbeatUrl(config: Pick<AgentConfig, "heartbeatUrl" | "reportUrl">): string {
  return config.heartbeatUrl ?? new URL("/v1/agent/heartbeats", config.reportUrl).toString();
}

// ---------------------------------------------------------------------------------------------

/** One validation problem, as shown to people: `path: message`. */
export interface ConfigProblem {
  path: string;
  message: string;
}

/** Flattens zod issues (including nested union failures) to `path: message` problems. */
export function formatIssues(error: z.ZodError, prefix: readonly PropertyKey[] = []): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const issue of error.issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === "invalid_union" && "errors" in issue && issue.errors.length > 0) {
      // Report the branch that came closest (fewest issues), not zod's generic "invalid input".
      const best = [...issue.errors].sort((a, b) => a.length - b.length)[0] ?? [];
      out.push(...formatIssues(new z.ZodError(best), path));
      continue;
    }
    out.push({ path: path.length ? path.map(String).join(".") : "(root)", message: issue.message });
  }
  return out;
}

export type Validated<T> = { ok: true; value: T } | { ok: false; problems: ConfigProblem[] };

function validate<T>(schema: z.ZodType<T>, input: unknown): Validated<T> {
  const result = schema.safeParse(input);
  return result.success ? { ok: true, value: result.data } : { ok: false, problems: formatIssues(result.error) };
}

/** Validates a worker config object. */
export const validateWorkerConfig = (input: unknown): Validated<WorkerConfig> => validate(WorkerConfigSchema, input);

/** Validates an agent config object. */
export const validateAgentConfig = (input: unknown): Validated<AgentConfig> => validate(AgentConfigSchema, input);
