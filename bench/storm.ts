/**
 * Benchmark: an alert storm (issue 9). 10,000 Alertmanager alerts across 100 targets, as 1,000
 * bodies of 10 alerts grouped per target (as Alertmanager groups them), 50 requests in flight,
 * against the real worker in workerd. 90 targets lose their active side (primary), 10 only ever
 * see their standby side fire. Afterwards:
 *   - exactly one action per target whose active side went down, none for the others (counted at
 *     a stub agent that accepts every action);
 *   - zero lost signals: every target's object holds exactly the distinct alerts sent to it;
 *   - decision latency: hold expiry (the `pending` event + holdSeconds) → `action.dispatched`,
 *     p50/p99 over the 90 targets.
 *
 * Run with `node bench/storm.ts`; `run()` returns the figures.
 */
import { pathToFileURL } from "node:url";
import { startWorker } from "../test/support/worker-process.ts";
import type { AuditEvent, TargetView } from "../worker/target/target-view.ts";
import { stubAgent } from "./ingest.ts";
import { percentile } from "./percentile.ts";

const TOKENS = { alertmanager: "storm-am-token", operator: "storm-operator-token", agent: "storm-agent-secret" };
const TARGETS = 100;
const DOWN_TARGETS = 90;
const ALERTS_PER_TARGET = 100;
const ALERTS_PER_BODY = 10;
const CONCURRENCY = 50;
const HOLD_SECONDS = 5;

export interface StormFigures {
  alerts: number;
  targets: number;
  downTargets: number;
  sendSeconds: number;
  alertsPerSecond: number;
  accepted: number;
  duplicates: number;
  ignored: number;
  errors: number;
  /** Distinct action ids the agent received, and how many targets got exactly one. */
  actions: number;
  targetsWithExactlyOneAction: number;
  actionsForTargetsNotDown: number;
  /** Signals stored vs sent, over all targets. */
  signalsStored: number;
  signalsLost: number;
  decisionMs: { p50: number; p99: number; max: number; samples: number };
}

const name = (t: number) => `storm-${t}`;

function workerConfig(agentUrl: string): string {
  const side = (target: string, s: string) => ({
    matchers: ['alertname="Storm"', `target="${target}"`, `side="${s}"`],
  });
  const targets: Record<string, unknown> = {};
  for (let t = 0; t < TARGETS; t++) {
    targets[name(t)] = {
      sides: { primary: side(name(t), "primary"), secondary: side(name(t), "secondary") },
      policy: { holdSeconds: HOLD_SECONDS },
    };
  }
  return JSON.stringify({ agent: { url: agentUrl, transport: "direct" }, targets });
}

/** Body `b` of target `t`: alerts b*10 … b*10+9 of that target, on the side that goes down. */
function body(t: number, b: number, startsAt: string): string {
  const side = t < DOWN_TARGETS ? "primary" : "secondary";
  return JSON.stringify({
    version: "4",
    groupKey: `{}:{target="${name(t)}"}`,
    truncatedAlerts: 0,
    status: "firing",
    receiver: "turnout",
    groupLabels: { target: name(t) },
    commonLabels: { alertname: "Storm", target: name(t), side },
    commonAnnotations: {},
    externalURL: "http://alertmanager.local",
    alerts: Array.from({ length: ALERTS_PER_BODY }, (_, k) => {
      const i = b * ALERTS_PER_BODY + k;
      return {
        status: "firing",
        labels: { alertname: "Storm", target: name(t), side, instance: `node-${i}` },
        annotations: {},
        startsAt,
        endsAt: "0001-01-01T00:00:00Z",
        generatorURL: "",
        fingerprint: (t * 1000 + i).toString(16).padStart(16, "0"),
      };
    }),
  });
}

export async function run(): Promise<StormFigures> {
  const agent = await stubAgent();
  const worker = await startWorker({
    vars: {
      TURNOUT_CONFIG: workerConfig(agent.url),
      ALERTMANAGER_TOKEN: TOKENS.alertmanager,
      OPERATOR_TOKEN: TOKENS.operator,
      TURNOUT_AGENT_SECRET: TOKENS.agent,
    },
  });
  try {
    const startsAt = new Date().toISOString();
    // Interleave targets, as a storm would: body 0 of every target, then body 1, …
    const bodies: string[] = [];
    for (let b = 0; b < ALERTS_PER_TARGET / ALERTS_PER_BODY; b++) {
      for (let t = 0; t < TARGETS; t++) bodies.push(body(t, b, startsAt));
    }
    const headers = { authorization: `Bearer ${TOKENS.alertmanager}`, "content-type": "application/json" };
    let next = 0;
    let accepted = 0;
    let duplicates = 0;
    let ignored = 0;
    let errors = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (;;) {
          const i = next++;
          if (i >= bodies.length) return;
          // Alertmanager retries 5xx: so does the storm, a few times.
          for (let attempt = 0; attempt < 5; attempt++) {
            const res = await fetch(`${worker.url}/v1/alertmanager`, { method: "POST", headers, body: bodies[i] });
            if (res.status === 200) {
              const r = (await res.json()) as { accepted: number; duplicates: number; ignored: number };
              accepted += r.accepted;
              duplicates += r.duplicates;
              ignored += r.ignored;
              break;
            }
            await res.arrayBuffer();
            errors += 1;
          }
        }
      }),
    );
    const sendSeconds = (performance.now() - started) / 1000;

    // Wait (bounded) until every down target's action reached the agent and the hold of the others
    // has certainly passed, then a little longer for any second action that should not exist.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && agent.arrivals.size < DOWN_TARGETS) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 2000));

    const ids = [...agent.arrivals.keys()];
    const perTarget = new Map<string, number>();
    for (const id of ids) {
      const target = id.slice(0, id.lastIndexOf(":"));
      perTarget.set(target, (perTarget.get(target) ?? 0) + 1);
    }
    let exactlyOne = 0;
    let notDown = 0;
    for (let t = 0; t < TARGETS; t++) {
      const n = perTarget.get(name(t)) ?? 0;
      if (t < DOWN_TARGETS && n === 1) exactlyOne += 1;
      if (t >= DOWN_TARGETS) notDown += n;
    }

    const auth = { authorization: `Bearer ${TOKENS.operator}` };
    let stored = 0;
    const latencies: number[] = [];
    for (let t = 0; t < TARGETS; t++) {
      const view = (await (await fetch(`${worker.url}/v1/targets/${name(t)}`, { headers: auth })).json()) as TargetView;
      stored += view.sides.primary.firing.length + view.sides.secondary.firing.length;
      if (t >= DOWN_TARGETS) continue;
      const page = (await (
        await fetch(`${worker.url}/v1/targets/${name(t)}/events?limit=1000`, { headers: auth })
      ).json()) as {
        events: AuditEvent[];
      };
      const pending = page.events.find(
        (e) => e.type === "phase.changed" && JSON.stringify(e.detail).includes('"to":"pending"'),
      );
      const dispatched = page.events.find((e) => e.type === "action.dispatched");
      if (pending && dispatched)
        latencies.push(Date.parse(dispatched.at) - (Date.parse(pending.at) + HOLD_SECONDS * 1000));
    }
    const sorted = latencies.sort((a, b) => a - b);
    const sent = TARGETS * ALERTS_PER_TARGET;
    return {
      alerts: sent,
      targets: TARGETS,
      downTargets: DOWN_TARGETS,
      sendSeconds: Math.round(sendSeconds * 10) / 10,
      alertsPerSecond: Math.round(sent / sendSeconds),
      accepted,
      duplicates,
      ignored,
      errors,
      actions: ids.length,
      targetsWithExactlyOneAction: exactlyOne,
      actionsForTargetsNotDown: notDown,
      signalsStored: stored,
      signalsLost: sent - stored,
      decisionMs: {
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
        max: sorted.at(-1) ?? Number.NaN,
        samples: sorted.length,
      },
    };
  } finally {
    await worker.stop();
    await agent.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await run(), null, 2));
}
