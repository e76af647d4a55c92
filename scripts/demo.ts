/**
 * `npm run demo`: the whole system on this machine, start to finish, in about 30 seconds.
 * Starts the worker in workerd (`wrangler dev`, random port), two agents as their own processes
 * in SANDBOX mode (design §11.1: `agent-a` for the primary sides and the one-cluster targets,
 * `agent-b` for the secondary sides, each with its own simulated cluster and key; no real
 * cluster is touched) and, when BIND's `named` is installed, a throwaway BIND for the DNS targets. Then it
 * fires one Alertmanager incident for egress-gw (route swap), bootstrap-dns (DNS flip) and
 * dc-nodes (node fence: the datacenter's three nodes go NotReady first, through the sandbox's
 * kubeconfig, as `kubectl patch node --subresource=status` would) and prints the timeline as the worker's audit log and the agent's reports tell it, polling
 * `GET /v1/targets/:name` and `GET /v1/targets/:name/events`. Stops everything it started and
 * exits 0 when every target ends on `secondary` (1 otherwise). It ends with the disaster case
 * (with etcd installed): the primary cluster (agent-a's process, its simulated cluster with it,
 * and the primary etcd) is SIGKILLed, and global-dr still fails over, executed by agent-b after a
 * two-person break-glass (the primary etcd cannot be verified, so the failover must be forced). With `--real-monitoring`, Prometheus
 * and two Alertmanagers drive the incident instead (scripts/demo-real-monitoring.ts).
 */
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { Etcd3 } from "etcd3";
import { queryRecord } from "../agent/dns/rfc2136.ts";
import { DEFAULT_EVICTION_SECONDS, OUT_OF_SERVICE_TAINT } from "../agent/executors/node-fence.ts";
import { namedPath } from "../agent/sandbox/bind-server.ts";
import { etcdBinariesAvailable } from "../agent/sandbox/etcd-server.ts";
import { rfc3339Seconds } from "../agent/sandbox/fake-kube-api.ts";
import type { StepReport } from "../shared/protocol.ts";
import { DNS, NODE_GROUPS, type Stack, type StackTarget, startStack, TOKENS, waitFor } from "../test/e2e/stack.ts";
import { eventually } from "../test/support/etcd.ts";
import { describeEvent as describe } from "../worker/target/sentence-parts.ts";
import type { TargetView } from "../worker/target/target-view.ts";

const HOLD_SECONDS = 3;
/** The second person of a break-glass (design §3a). */
const SECOND_OPERATOR = "demo-second-operator-token";
const TIMEOUT_MS = 60_000;
/** How far behind the polls the timeline prints (a step is learnt only once it finished). */
const WATERMARK_MS = 1_000;

type Detail = Record<string, unknown>;
const asDetail = (d: unknown): Detail =>
  typeof d === "object" && d !== null && !Array.isArray(d) ? (d as Detail) : {};
const str = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));

interface Line {
  at: number;
  target: string;
  text: string;
}

async function main(): Promise<number> {
  // Prometheus and an Alertmanager pair drive the incident instead (issue 20).
  if (process.argv.includes("--real-monitoring")) {
    return (await import("./demo-real-monitoring.ts")).runRealMonitoringDemo();
  }
  // The same look-ups the sandbox and the test helpers use.
  const withDns = namedPath() !== undefined;
  const withEtcd = withDns && etcdBinariesAvailable();
  const targets: Record<string, StackTarget> = { "egress-gw": { kind: "route-swap", holdSeconds: HOLD_SECONDS } };
  if (withDns) targets["bootstrap-dns"] = { kind: "dns-flip", holdSeconds: HOLD_SECONDS };
  else console.log("demo: BIND's `named` is not installed (`npm run setup`); showing egress-gw only\n");
  if (withEtcd) {
    // global-dr as in turnout.config.json: approval required; its DNS step flips platform-dns.
    targets["platform-dns"] = { kind: "dns-flip", holdSeconds: HOLD_SECONDS };
    targets["global-dr"] = {
      kind: "etcd-sync-teardown",
      holdSeconds: HOLD_SECONDS,
      dns: "platform-dns",
      policy: { approval: "required" },
    };
  } else if (withDns) console.log("demo: etcd is not installed (`npm run setup`); leaving out global-dr\n");
  // dc-nodes as in turnout.config.json: approval required (a partitioned node looks dead too).
  targets["dc-nodes"] = { kind: "node-fence", holdSeconds: HOLD_SECONDS, policy: { approval: "required" } };

  console.log(
    `demo: starting the worker (workerd), agent-a and agent-b (each its own sandbox), BIND${withEtcd ? " and two etcd" : ""} …`,
  );
  const startedAt = performance.now();
  let stack: Stack | undefined;
  let starting: Promise<Stack> | undefined;
  // Ctrl-C: wrangler runs in its own process group (startWorker), so the terminal's SIGINT does
  // not reach it; stop everything here (waiting for a start in progress) before leaving.
  const interrupted = async (signal: string) => {
    console.log(`\ndemo: ${signal}; stopping everything it started`);
    const started = await starting?.catch(() => undefined);
    await started?.stop();
    process.exit(130);
  };
  process.once("SIGINT", () => void interrupted("SIGINT"));
  process.once("SIGTERM", () => void interrupted("SIGTERM"));
  try {
    starting = startStack({
      targets,
      agents: "two",
      // Short, so the demo shows agent-a's silence after the disaster within seconds.
      silentAfterSeconds: 5,
      heartbeatSeconds: 1,
      workerVars: {
        OPERATOR_TOKENS: JSON.stringify({ "second-operator": { token: SECOND_OPERATOR, role: "operator" } }),
      },
    });
    stack = await starting;
    const s = stack;
    const sandboxLine = s
      .agentOutput()
      .split("\n")
      .find((l) => l.includes("SANDBOX"));
    console.log(
      `demo: worker ${s.worker.url}, ${Object.values(s.agents)
        .map((a) => `${a.name} ${a.url}`)
        .join(
          ", ",
        )}${s.bind ? `, BIND ${s.bind.server}` : ""}${s.etcd ? `, etcd ${s.etcd.primary.url} → ${s.etcd.standby.url}` : ""}`,
    );
    if (sandboxLine) console.log(`demo: agent says: ${str(asDetail(JSON.parse(sandboxLine)).msg)}`);
    console.log(
      `demo: up in ${((performance.now() - startedAt) / 1000).toFixed(1)} s; policy: holdSeconds ${HOLD_SECONDS}, approval auto (${withEtcd ? "global-dr and " : ""}dc-nodes: required)\n`,
    );
    // platform-dns is not an incident of its own: global-dr's action flips it.
    // global-dr is the disaster at the end; platform-dns is not an incident of its own (global-dr flips it).
    const names = Object.keys(targets).filter((n) => n !== "platform-dns" && n !== "global-dr");
    const records = Object.keys(targets)
      .filter((n) => targets[n]?.kind === "dns-flip")
      .map((n) => s.recordOf(n));
    const etcd = s.etcd;
    if (etcd) {
      // A few keys for the consistency check to compare; the sandbox's make-mirror copies them.
      const primary = new Etcd3({ hosts: etcd.primary.url });
      const standby = new Etcd3({ hosts: etcd.standby.url });
      try {
        for (const k of [
          "namespaces/cpaas-system",
          "deployments/cpaas-system/api",
          "configmaps/cpaas-system/settings",
        ]) {
          await primary.put(`/registry/${k}`).value(`{"demo":"${k}"}`);
        }
        await eventually(
          async () => (await standby.getAll().prefix("/registry/").keys()).length === 3,
          "the 3 keys mirrored to the standby",
        );
        console.log("demo: wrote 3 keys under /registry/ on the primary etcd; make-mirror copied them to the standby");
      } finally {
        primary.close();
        standby.close();
      }
    }
    const bind = s.bind;
    if (bind) {
      for (const r of records)
        console.log(`demo: ${r} A = ${(await queryRecord(bind.server, r, "A")).join(", ")} before`);
      console.log("");
    }

    // The datacenter goes dark: its nodes' kubelets stopped posting 90 s ago (past notReadySeconds=60).
    const dcNodes = [1, 2, 3].map((i) => `${NODE_GROUPS.primary}-${i}`);
    const kc = new KubeConfig();
    kc.loadFromFile(s.sandboxKubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    const lostAt = Date.now() - 90_000;
    const since = rfc3339Seconds(lostAt);
    for (const name of dcNodes) {
      await core.patchNodeStatus(
        { name, body: { status: { conditions: [{ type: "Ready", status: "Unknown", lastTransitionTime: since }] } } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
    }
    const pgBefore = (await core.readNamespacedPod({ namespace: "db", name: "postgres-0" })).spec?.nodeName;
    console.log(
      `demo: ${dcNodes.join(", ")} NotReady since 90 s ago (kubectl --kubeconfig ${s.sandboxKubeconfig} patch node … --subresource=status); db/postgres-0 runs on ${pgBefore}\n`,
    );

    const t0 = Date.now();
    const answer = await s.alert(
      names.map((target) => ({ target, side: "primary" as const, status: "firing" as const, at: t0 })),
    );
    console.log(
      `demo: POST /v1/alertmanager (${names.map((n) => `${n} primary`).join(", ")} down) → ${answer.status} ${JSON.stringify(answer.body)}\n`,
    );

    const width = Math.max(...[...names, "global-dr"].map((n) => n.length));
    const print = (l: Line) =>
      console.log(`  +${((l.at - t0) / 1000).toFixed(3).padStart(7)} s  ${l.target.padEnd(width)}  ${l.text}`);
    const lastSeq = new Map<string, number>();
    const stepsShown = new Map<string, string>();
    const done = new Map<string, TargetView>();
    const approved = new Set<string>();
    // Lines wait in `held` until they are older than the watermark, so events and steps learnt
    // in different polls still print in time order.
    const held: Line[] = [];
    const flush = (upTo: number) => {
      held.sort((a, b) => a.at - b.at);
      while (held.length && (held[0]?.at ?? Number.POSITIVE_INFINITY) <= upTo) {
        const l = held.shift();
        if (l) print(l);
      }
    };
    /**
     * Prints the timeline of `group` until each is steady on secondary. A target awaiting
     * approval is approved by API, or, in the disaster, forced by a two-person break-glass
     * (the primary etcd cannot be verified, so an approved failover would stop at its check).
     */
    const follow = async (group: string[], decide: "approve" | "break-glass") => {
      const deadline = Date.now() + TIMEOUT_MS;
      const open = () => group.filter((t) => !done.has(t));
      while (open().length && Date.now() < deadline) {
        const pollStarted = Date.now();
        const batch = held;
        for (const target of open()) {
          // The view first: once it says done, the events read next include the final report.
          const view = await s.view(target);
          if (view.phase === "awaiting_approval" && !approved.has(target)) {
            approved.add(target);
            batch.push(...(decide === "approve" ? await approve(target) : await breakGlass(target)));
          }
          for (const step of view.action?.steps ?? []) batch.push(...stepLines(target, view, step, stepsShown));
          const events = (await s.events(target)).filter((e) => e.seq > (lastSeq.get(target) ?? 0));
          for (const e of events) {
            lastSeq.set(target, e.seq);
            const text = describe(e);
            if (text) batch.push({ at: Date.parse(e.at), target, text });
          }
          if (view.phase === "steady" && view.action?.status === "succeeded" && view.activeSide === "secondary") {
            done.set(target, view);
          }
        }
        flush(pollStarted - WATERMARK_MS);
        if (open().length) await new Promise((r) => setTimeout(r, 150));
      }
      flush(Number.POSITIVE_INFINITY);
    };
    // The operator's part: approve by API (Slack's Approve button does the same).
    const approve = async (target: string): Promise<Line[]> => {
      const sent = Date.now();
      const res = await s.command(target, "approve", { reason: "standby checked; go", actor: "demo-operator" });
      return [
        {
          at: sent,
          target,
          text: `operator: POST /v1/targets/${target}/commands {"command":"approve"} → ${res.status}`,
        },
      ];
    };
    // Two people (design §3a): one asks for the forced failover, a different one confirms it.
    const breakGlass = async (target: string): Promise<Line[]> => {
      const askedAt = Date.now();
      const asked = await s.command(target, "failover", { force: true, reason: "the primary site is gone" });
      const request = ((await asked.json()) as { request?: { id: string } }).request?.id ?? "";
      const confirmedAt = Date.now();
      const confirmed = await fetch(`${s.worker.url}/v1/targets/${target}/commands`, {
        method: "POST",
        headers: { authorization: `Bearer ${SECOND_OPERATOR}`, "content-type": "application/json" },
        body: JSON.stringify({ command: "confirm", request }),
      });
      const body = (await confirmed.json()) as { warnings?: string[] };
      return [
        {
          at: askedAt,
          target,
          text: `operator: POST /v1/targets/${target}/commands {"command":"failover","force":true} → ${asked.status} (break-glass asked)`,
        },
        {
          at: confirmedAt,
          target,
          text: `second-operator: {"command":"confirm"} → ${confirmed.status}${body.warnings?.length ? ` (warning: ${body.warnings.join("; ")})` : ""}`,
        },
      ];
    };
    await follow(names, "approve");

    console.log("\ndemo: final state");
    let ok = true;
    for (const target of names) {
      const v = done.get(target) ?? (await s.view(target));
      const onSecondary = v.activeSide === "secondary" && v.phase === "steady";
      ok &&= onSecondary;
      console.log(
        `  ${target.padEnd(width)}  activeSide ${v.activeSide}, phase ${v.phase}, action ${v.action?.id ?? "-"} ${v.action?.status ?? ""}, cooldown until ${v.cooldownUntil ?? "-"}`,
      );
    }
    const fence = done.get("dc-nodes");
    if (fence?.action) {
      const pg = await core.readNamespacedPod({ namespace: "db", name: "postgres-0" });
      const tainted = [];
      for (const n of dcNodes) {
        const node = await core.readNode({ name: n });
        if ((node.spec?.taints ?? []).some((t) => t.key === OUT_OF_SERVICE_TAINT.key)) tainted.push(n);
      }
      const ready = Date.parse(fence.action.steps.find((x) => x.name === "wait-workloads")?.finishedAt ?? "");
      const sinceLoss = Math.round((ready - lostAt) / 1000);
      const saved = DEFAULT_EVICTION_SECONDS - sinceLoss;
      console.log(
        `  dc-nodes  out-of-service taint on ${tainted.join(", ") || "no node"}; db/postgres-0 now on ${pg.spec?.nodeName}, Ready ${sinceLoss} s after the nodes were lost`,
      );
      console.log(
        `            Kubernetes alone: eviction only ${DEFAULT_EVICTION_SECONDS} s after NotReady (${(saved / 60).toFixed(1)} min later than this), and postgres-0's volume would have stayed attached to ${pgBefore}, so postgres-0 would never have been rescheduled without a person`,
      );
      ok &&= pg.spec?.nodeName !== pgBefore && tainted.length === dcNodes.length;
    }
    if (bind) {
      // platform-dns moves with global-dr, in the disaster below.
      for (const r of records.filter((x) => x !== s.recordOf("platform-dns"))) {
        const now = await queryRecord(bind.server, r, "A");
        console.log(`  ${r} A = ${now.join(", ")} (asked BIND at ${bind.server})`);
        ok &&= now.join() === DNS.secondary;
      }
    }
    const a = s.agents["agent-a"];
    const b = s.agents["agent-b"];
    if (etcd && a && b) {
      // The disaster of design §11.1: the primary cluster is gone, and with it agent-a (its
      // simulated cluster lives in its process) and the primary etcd. agent-b, in the standby
      // cluster, is what is left to execute global-dr.
      console.log(
        "\ndemo: the disaster: the primary cluster goes dark: agent-a (with its simulated cluster) and the primary etcd are SIGKILLed",
      );
      await a.kill();
      await etcd.primary.stop();
      const at = Date.now();
      const down = await s.alert([{ target: "global-dr", side: "primary", status: "firing", at }]);
      console.log(
        `demo: POST /v1/alertmanager (global-dr primary down) → ${down.status} ${JSON.stringify(down.body)}\n`,
      );
      await follow(["global-dr"], "break-glass");
      const v = done.get("global-dr") ?? (await s.view("global-dr"));
      const id = v.action?.id ?? "";
      const byB = id ? await b.report(id) : undefined;
      // agent-a's silence is noticed silentAfterSeconds after it was last heard (once, audited).
      type AgentRow = { name: string; silent: boolean; lastHeardAt: string | null };
      const agentRows = async () =>
        (
          (await (
            await fetch(`${s.worker.url}/v1/agents`, { headers: { authorization: `Bearer ${TOKENS.operator}` } })
          ).json()) as { agents: AgentRow[] }
        ).agents;
      const agents = {
        agents: await waitFor("agent-a silent", async () => {
          const rows = await agentRows();
          return rows.find((r) => r.name === "agent-a")?.silent ? rows : undefined;
        }).catch(() => agentRows()),
      };
      console.log("\ndemo: after the disaster");
      console.log(
        `  global-dr  activeSide ${v.activeSide}, phase ${v.phase}, action ${id || "-"} ${v.action?.status ?? ""}, executed by agent-b (its own report: ${byB?.status ?? "none"})`,
      );
      for (const row of agents.agents) {
        console.log(`  ${row.name}    ${row.silent ? "SILENT" : "heard"}, last heard ${row.lastHeardAt ?? "never"}`);
      }
      ok &&= v.activeSide === "secondary" && byB?.status === "succeeded";
      if (bind) {
        const platform = await queryRecord(bind.server, s.recordOf("platform-dns"), "A");
        console.log(
          `  ${s.recordOf("platform-dns")} A = ${platform.join(", ")} (flipped by agent-b; asked BIND at ${bind.server})`,
        );
        ok &&= platform.join() === DNS.secondary;
      }
    }
    console.log(
      ok ? "\ndemo: done; every target is on its secondary" : "\ndemo: FAILED: not every target reached secondary",
    );
    return ok ? 0 : 1;
  } finally {
    await stack?.stop();
    console.log("demo: stopped everything it started (worker, agent-a, agent-b, BIND, etcd)");
  }
}

/** A line for a step that started or finished since the last poll (finished lines carry the duration). */
function stepLines(target: string, view: TargetView, step: StepReport, shown: Map<string, string>): Line[] {
  const key = `${view.action?.id}/${step.name}`;
  const previous = shown.get(key);
  if (previous === step.status) return [];
  shown.set(key, step.status);
  const out: Line[] = [];
  if (step.status === "running" && step.startedAt) {
    out.push({ at: Date.parse(step.startedAt), target, text: `  step ${step.name} running` });
  }
  if ((step.status === "succeeded" || step.status === "failed" || step.status === "skipped") && step.finishedAt) {
    const took = step.startedAt ? `${Date.parse(step.finishedAt) - Date.parse(step.startedAt)} ms` : "";
    out.push({
      at: Date.parse(step.finishedAt),
      target,
      text: `  step ${step.name} ${step.status}${took ? ` in ${took}` : ""}: ${step.detail ?? ""}`,
    });
  }
  return out;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
