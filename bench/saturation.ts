/**
 * Benchmark: one target saturated (issue 19). 1,000 signals/s are offered to ONE target for 20 s,
 * as 100 Alertmanager bodies of 10 alerts a second, sent on a fixed schedule whatever the answers
 * (open loop: a slow object makes requests pile up, as a real storm would). Every alert is a new
 * incident of one of {@link POOL} alerts (its startsAt moves on with each body), so every signal
 * takes the full write path; an update overtaken in flight by a newer one of its alert is stale
 * (`ignored`), as design §4 orders them. A 5xx is retried at once, up to 5 attempts, as
 * Alertmanager retries.
 *
 * Reported: the achieved signals/s (signals the worker answered for ÷ time to the last answer),
 * p50/p99 of a body from first send to its final answer, and that nothing was lost, checked in
 * the target itself: its view holds, for every alert, the newest incident sent (100 alerts per
 * side, all within the view's listing limit of design §4), and its audit log holds one
 * `signal.firing` event per accepted signal (checked while retention has not trimmed the log).
 *
 * Run with `node bench/saturation.ts [wrangler|miniflare]`; `run()` returns the figures.
 */
import { pathToFileURL } from "node:url";
import type { AuditEvent, TargetView } from "../worker/target/target-view.ts";
import { type Runtime, startEndpoint } from "./endpoint.ts";
import { stubAgent, TOKENS } from "./ingest.ts";
import { percentile } from "./percentile.ts";

const TARGET = "saturated";
/** Distinct alerts of the one target, half on each side (the view lists up to 100 per side). */
const POOL = 200;
const ALERTS_PER_BODY = 10;
const MAX_ATTEMPTS = 5;

export interface SaturationFigures {
  runtime: Runtime;
  offeredSignalsPerSecond: number;
  seconds: number;
  signalsSent: number;
  /** Signals in 200 answers (accepted + duplicates + ignored) ÷ time from the first send to the last answer. */
  achievedSignalsPerSecond: number;
  accepted: number;
  duplicates: number;
  ignored: number;
  /** Non-200 answers (each retried), and bodies still failing after every attempt. */
  retries: number;
  failedBodies: number;
  /** A body from its first send to its final answer. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Alerts whose stored incident is not the newest one sent (0 = nothing lost). */
  alertsBehind: number;
  /** `signal.firing` events in the audit log, to compare with `accepted` (null when retention trimmed the log). */
  signalEvents: number | null;
  signalsLost: number;
}

function workerConfig(agentUrl: string): string {
  const side = (s: string) => ({ matchers: [`target="${TARGET}"`, `side="${s}"`] });
  return JSON.stringify({
    agent: { url: agentUrl, transport: "direct" },
    // A long hold: the figures are about recording signals, not acting on them.
    targets: {
      [TARGET]: { sides: { primary: side("primary"), secondary: side("secondary") }, policy: { holdSeconds: 3600 } },
    },
  });
}

const fingerprint = (i: number) => i.toString(16).padStart(16, "0");
const startsAtOf = (b: number) => new Date(Date.UTC(2026, 0, 1) + b * 1000).toISOString();

const sideOf = (i: number) => (i % 2 === 0 ? "primary" : "secondary");

/** Body `b`: alerts b*10 … b*10+9 of the pool, a new incident of each. */
function body(b: number): string {
  const startsAt = startsAtOf(b);
  return JSON.stringify({
    version: "4",
    groupKey: `{}:{target="${TARGET}"}`,
    truncatedAlerts: 0,
    status: "firing",
    receiver: "turnout",
    groupLabels: { target: TARGET },
    commonLabels: { alertname: "Saturation", target: TARGET },
    commonAnnotations: {},
    externalURL: "http://alertmanager.local",
    alerts: Array.from({ length: ALERTS_PER_BODY }, (_, k) => {
      const i = (b * ALERTS_PER_BODY + k) % POOL;
      return {
        status: "firing",
        labels: { alertname: "Saturation", target: TARGET, side: sideOf(i), instance: `node-${i}` },
        annotations: {},
        startsAt,
        endsAt: "0001-01-01T00:00:00Z",
        generatorURL: "",
        fingerprint: fingerprint(i),
      };
    }),
  });
}

/** Offers `signalsPerSecond` to one target for `seconds` and checks the target afterwards. */
export async function run(
  runtime: Runtime = "wrangler",
  signalsPerSecond = 1000,
  seconds = 20,
): Promise<SaturationFigures> {
  const agent = await stubAgent();
  const worker = await startEndpoint(runtime, "turnout", {
    TURNOUT_CONFIG: workerConfig(agent.url),
    ALERTMANAGER_TOKEN: TOKENS.alertmanager,
    OPERATOR_TOKEN: TOKENS.operator,
    TURNOUT_AGENT_SECRET: TOKENS.agent,
  });
  try {
    const bodiesPerSecond = signalsPerSecond / ALERTS_PER_BODY;
    const total = Math.round(bodiesPerSecond * seconds);
    const bodies = Array.from({ length: total }, (_, b) => body(b));
    const url = `${worker.url}/v1/alertmanager`;
    const headers = { authorization: `Bearer ${TOKENS.alertmanager}`, "content-type": "application/json" };
    let accepted = 0;
    let duplicates = 0;
    let ignored = 0;
    let retries = 0;
    let failedBodies = 0;
    let lastAnswer = 0;
    const times: number[] = [];
    const send = async (b: number) => {
      const t = performance.now();
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        try {
          const res = await fetch(url, { method: "POST", headers, body: bodies[b] });
          if (res.status === 200) {
            const r = (await res.json()) as { accepted: number; duplicates: number; ignored: number };
            accepted += r.accepted;
            duplicates += r.duplicates;
            ignored += r.ignored;
            lastAnswer = performance.now();
            times.push(lastAnswer - t);
            return;
          }
          await res.arrayBuffer();
        } catch {
          // a refused or reset connection counts as a failed attempt, like a 5xx
        }
        retries += 1;
      }
      failedBodies += 1;
    };
    const started = performance.now();
    const sending: Promise<void>[] = [];
    for (let b = 0; b < total; b++) {
      const due = started + (b * 1000) / bodiesPerSecond;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      sending.push(send(b));
    }
    await Promise.all(sending);
    const answered = accepted + duplicates + ignored;
    const elapsed = (lastAnswer - started) / 1000;

    // Nothing lost: the target stores, for every alert, the newest incident sent of it…
    const auth = { authorization: `Bearer ${TOKENS.operator}` };
    const expected = new Map<string, string>();
    for (let b = 0; b < total; b++) {
      for (let k = 0; k < ALERTS_PER_BODY; k++) {
        const key = `am:${fingerprint((b * ALERTS_PER_BODY + k) % POOL)}`;
        expected.set(key, `${key}@${startsAtOf(b)}`);
      }
    }
    const view = (await (await fetch(`${worker.url}/v1/targets/${TARGET}`, { headers: auth })).json()) as TargetView;
    const firing = [...view.sides.primary.firing, ...view.sides.secondary.firing];
    const stored = new Map(firing.map((s) => [s.key, s.incident]));
    let alertsBehind = 0;
    for (const [key, incident] of expected) if (stored.get(key) !== incident) alertsBehind += 1;
    // …and one audit event per accepted signal, unless retention has trimmed the log's start.
    let signalEvents: number | null = 0;
    let after = 0;
    for (;;) {
      const page = (await (
        await fetch(`${worker.url}/v1/targets/${TARGET}/events?after=${after}&limit=1000`, { headers: auth })
      ).json()) as { events: AuditEvent[]; next?: number };
      if (after === 0 && (page.events[0]?.seq ?? 1) !== 1) {
        signalEvents = null;
        break;
      }
      signalEvents += page.events.filter((e) => e.type === "signal.firing").length;
      if (page.next === undefined) break;
      after = page.next;
    }
    const sorted = times.sort((a, b) => a - b);
    const sent = total * ALERTS_PER_BODY;
    const round = (n: number) => Math.round(n * 10) / 10;
    return {
      runtime,
      offeredSignalsPerSecond: signalsPerSecond,
      seconds,
      signalsSent: sent,
      achievedSignalsPerSecond: Math.round(answered / elapsed),
      accepted,
      duplicates,
      ignored,
      retries,
      failedBodies,
      p50Ms: round(percentile(sorted, 50)),
      p99Ms: round(percentile(sorted, 99)),
      maxMs: round(sorted.at(-1) ?? Number.NaN),
      alertsBehind,
      signalEvents,
      // A signal is lost when the worker never answered for it, or the target lacks its effect.
      signalsLost: sent - answered + alertsBehind + (signalEvents === null ? 0 : Math.abs(signalEvents - accepted)),
    };
  } finally {
    await worker.stop();
    await agent.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await run(process.argv[2] === "miniflare" ? "miniflare" : "wrangler"), null, 2));
}
