/**
 * Real monitoring drives the real worker (issue 20): Prometheus 2 with an HA pair of clustered
 * Alertmanagers, Nagios Core 4 and Icinga 2, each loading the example files users copy
 * (examples/, only the URL and token placeholders filled in), in front of the workerd worker and
 * the agent process of test/e2e/stack.ts. A recording hop (test/support/webhook-recorder.ts) sits
 * between the monitoring and the worker, so the tests see which Alertmanager peer delivered what
 * and can answer one delivery 503. Every scenario prints the time from the monitored state
 * change to the dispatch of the action. The scenarios run concurrently on their own targets:
 * Alertmanager's group_interval and Nagios' check attempts are real seconds.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, type ExpectStatic, it } from "vitest";
import type { Side } from "../../shared/config.ts";
import type { AuditEvent } from "../../worker/target/target-view.ts";
import { type AlertmanagerPair, startAlertmanagerPair } from "../support/alertmanager.ts";
import {
  example,
  exampleAlertmanagerConfig,
  PLACEHOLDER_URL,
  startGatewayPrometheus,
} from "../support/example-monitoring.ts";
import { type Icinga2Server, startIcinga2 } from "../support/icinga2.ts";
import { type NagiosServer, startNagios } from "../support/nagios.ts";
import { type ProbeExporter, startProbeExporter } from "../support/probe-exporter.ts";
import type { PrometheusServer } from "../support/prometheus.ts";
import { type RecordedRequest, startWebhookRecorder, type WebhookRecorder } from "../support/webhook-recorder.ts";
import { type Stack, startStack, TOKENS, waitFor } from "./stack.ts";

const fragment = JSON.parse(example("turnout.fragment.json")) as {
  targets: Record<string, { sides: Record<Side, unknown> }>;
};

// Nagios and Icinga need a few seconds from the first failed check to the HARD state; a longer
// hold than the Alertmanager targets' leaves time to send the ACK and the downtime within it.
const CHECK_HOLD = 6;
const FLAP_HOLD = 20;

let stack: Stack;
let recorder: WebhookRecorder;
let probes: ProbeExporter;
let alertmanagers: AlertmanagerPair;
let prometheus: PrometheusServer;
let nagios: NagiosServer;
let icinga: Icinga2Server;
let scratch: string;
const stops: (() => Promise<void>)[] = [];

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "turnout-monitoring-"));
  let workerUrl = "";
  recorder = await startWebhookRecorder(() => workerUrl);
  stops.push(() => recorder.stop());
  probes = await startProbeExporter();
  stops.push(() => probes.stop());

  const tokenFile = join(scratch, "alertmanager-token");
  writeFileSync(tokenFile, TOKENS.alertmanager);
  const fill = (text: string, sender: string) => text.replaceAll(PLACEHOLDER_URL, recorder.urlFor(sender));
  const nagiosCfg = join(scratch, "turnout.cfg");
  writeFileSync(nagiosCfg, fill(example("nagios/turnout.cfg"), "nagios"));
  const icingaConf = join(scratch, "turnout.conf");
  writeFileSync(icingaConf, fill(example("icinga2/turnout.conf"), "icinga2"));

  const started = await Promise.allSettled([
    startStack({
      targets: {
        // Nagios checks of gw-primary / gw-secondary, routed by the shipped fragment.
        "egress-gw": {
          kind: "route-swap",
          holdSeconds: CHECK_HOLD,
          policy: { cooldownSeconds: 0 },
          sides: fragment.targets["egress-gw"]?.sides,
        },
        "am-gw": { kind: "route-swap", holdSeconds: 2 },
        "flap-gw": {
          kind: "route-swap",
          holdSeconds: FLAP_HOLD,
          policy: { flap: { windowSeconds: 120, maxTransitions: 2 } },
        },
        "retry-gw": { kind: "route-swap", holdSeconds: 2 },
        // Icinga checks of bootstrap-a / bootstrap-b, routed by the shipped fragment.
        "bootstrap-dns": {
          kind: "dns-flip",
          holdSeconds: CHECK_HOLD,
          policy: { cooldownSeconds: 0 },
          sides: fragment.targets["bootstrap-dns"]?.sides,
        },
      },
    }).then((s) => {
      stack = s;
      workerUrl = s.worker.url;
      stops.push(() => s.stop());
    }),
    startAlertmanagerPair({
      config: (i) => exampleAlertmanagerConfig(recorder.urlFor(`alertmanager-${i}`), tokenFile),
      // Both peers deliver, as when gossip lags or the pair is partitioned: turnout must dedupe.
      peerTimeout: "0s",
    }).then((pair) => {
      alertmanagers = pair;
      stops.push(() => pair.stop());
    }),
    startNagios({
      includeFiles: [nagiosCfg],
      resource: { USER10: TOKENS.nagios },
      objects: ["gw-primary", "gw-secondary"].map((h) => nagiosObjects(h, "gateway-probe")).join("\n"),
    }).then((n) => {
      nagios = n;
      stops.push(() => n.stop());
    }),
    startIcinga2({
      includeFiles: [icingaConf],
      constants: { TurnoutToken: TOKENS.nagios },
      objects: ["bootstrap-a", "bootstrap-b"].map((h) => icingaObjects(h, "node-probe")).join("\n"),
    }).then((i) => {
      icinga = i;
      stops.push(() => i.stop());
    }),
  ]);
  const failed = started.find((s) => s.status === "rejected");
  if (failed) throw failed.reason;

  const gateways = ["am-gw", "flap-gw", "retry-gw"].flatMap((t) =>
    (["primary", "secondary"] as const).map((side) => stack.labels(t, side).gateway ?? ""),
  );
  prometheus = await startGatewayPrometheus({
    gateways,
    alertmanagers: alertmanagers.peers.map((p) => p.address),
    exporterAddress: probes.address,
  });
  stops.push(() => prometheus.stop());
}, 90_000);

afterAll(async () => {
  if (process.env.TURNOUT_CAPTURE_WEBHOOKS) {
    writeFileSync(process.env.TURNOUT_CAPTURE_WEBHOOKS, JSON.stringify(recorder?.requests() ?? [], null, 2));
  }
  for (const stop of stops.splice(0).reverse()) await stop().catch(() => {});
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}, 60_000);

function nagiosObjects(host: string, service: string): string {
  return `define host {
  use                   turnout-host
  host_name             ${host}
  address               127.0.0.1
  check_command         $STATECHECK$!${host}-host
  max_check_attempts    1
  check_interval        5
  retry_interval        1
  check_period          24x7
  notification_period   24x7
}
define service {
  use                   turnout-service
  host_name             ${host}
  service_description   ${service}
  check_command         $STATECHECK$!${host}
  max_check_attempts    3
  check_interval        1
  retry_interval        1
  check_period          24x7
  notification_period   24x7
}`;
}

function icingaObjects(host: string, service: string): string {
  return `object Host ${JSON.stringify(host)} {
  check_command = "turnout-test-state"
  vars.state_name = ${JSON.stringify(`${host}-host`)}
  check_interval = 5s
  max_check_attempts = 1
}
object Service ${JSON.stringify(service)} {
  host_name = ${JSON.stringify(host)}
  check_command = "turnout-test-state"
  vars.state_name = ${JSON.stringify(host)}
  check_interval = 1s
  retry_interval = 1s
  max_check_attempts = 3
  vars.turnout = true
}`;
}

const ofType = (events: AuditEvent[], type: string) => events.filter((e) => e.type === type);

/** An event's detail as a record (signal events carry key, incident, notice, …). */
function detailOf(e: AuditEvent | undefined): Record<string, unknown> {
  const d = e?.detail;
  return typeof d === "object" && d !== null && !Array.isArray(d) ? (d as Record<string, unknown>) : {};
}

/** Prints how long the monitored change took to become a dispatched action (issue 20 asks for it). */
function report(what: string, changedAt: number, event: AuditEvent | undefined): number {
  const ms = event ? Date.parse(event.at) - changedAt : Number.NaN;
  console.log(`[monitoring] ${what}: ${(ms / 1000).toFixed(2)} s from the state change to dispatch`);
  return ms;
}

interface AmAlert {
  status: string;
  labels: Record<string, string>;
  startsAt: string;
  endsAt: string;
  fingerprint: string;
}

/** The Alertmanager deliveries that carry an alert for `gateway` with `status`. */
function amDeliveries(requests: RecordedRequest[], gateway: string, status: "firing" | "resolved"): RecordedRequest[] {
  return requests.filter((r) => {
    if (!r.sender.startsWith("alertmanager-")) return false;
    const body = JSON.parse(r.body) as { alerts: AmAlert[] };
    return body.alerts.some((a) => a.labels.gateway === gateway && a.status === status);
  });
}

/** Waits for the target's latest action to succeed and returns the events then. */
async function actionSucceeded(target: string, timeoutMs = 40_000): Promise<AuditEvent[]> {
  return waitFor(
    `${target}'s action to succeed`,
    async () => {
      const events = await stack.events(target);
      return ofType(events, "action.succeeded").length > 0 ? events : undefined;
    },
    timeoutMs,
  );
}

/** Nagios/Icinga-style `SERVICE ALERT: host;service;STATE;SOFT|HARD;attempt;…` lines of a log. */
function serviceAlerts(log: string, host: string, service: string): string[] {
  return log.split("\n").filter((l) => l.includes(`SERVICE ALERT: ${host};${service};`));
}

describe.concurrent("real monitoring → workerd worker → agent", () => {
  it("Prometheus → Alertmanager HA pair: both peers deliver, one route swap, the late resolve marks the side up", async ({
    expect,
  }) => {
    const gateway = stack.labels("am-gw", "primary").gateway ?? "";
    const changedAt = Date.now();
    probes.set(gateway, false);

    const events = await actionSucceeded("am-gw");
    const dispatched = ofType(events, "action.dispatched");
    expect(dispatched).toHaveLength(1);
    report("Prometheus → Alertmanager → worker", changedAt, dispatched[0]);
    expect(await stack.view("am-gw")).toMatchObject({ activeSide: "secondary", action: { id: "am-gw:1" } });
    // Both peers delivered the firing alert (same fingerprint and startsAt); the worker took one.
    const firing = await waitFor("both Alertmanagers' firing deliveries", async () => {
      const got = amDeliveries(recorder.requests(), gateway, "firing");
      return new Set(got.map((r) => r.sender)).size === 2 ? got : undefined;
    });
    expect(firing.every((r) => r.status === 200)).toBe(true);
    const firstFiring = Math.min(...firing.map((r) => r.at));
    console.log(
      `[monitoring] first Alertmanager delivery ${((firstFiring - changedAt) / 1000).toFixed(2)} s after the probe failed`,
    );
    const keys = ofType(events, "signal.firing").map((e) => detailOf(e).key);
    expect(keys).toHaveLength(1);

    // The resolve comes at the group's next flush (group_interval), well after the probe recovers.
    const recoveredAt = Date.now();
    probes.set(gateway, true);
    const up = await waitFor(
      "the resolve to mark the primary up",
      async () => {
        const v = await stack.view("am-gw");
        return v.sides.primary.health === "up" ? v : undefined;
      },
      30_000,
    );
    const resolved = amDeliveries(recorder.requests(), gateway, "resolved");
    expect(resolved.length).toBeGreaterThanOrEqual(1);
    const firstResolve = Math.min(...resolved.map((r) => r.at));
    console.log(`[monitoring] Alertmanager resolve arrived ${((firstResolve - recoveredAt) / 1000).toFixed(2)} s late`);
    expect(up).toMatchObject({ activeSide: "secondary", phase: "steady" });
    const after = await stack.events("am-gw");
    expect(ofType(after, "signal.resolved")).toHaveLength(1);
    expect(ofType(after, "action.dispatched")).toHaveLength(1);
    expect(await stack.agentReport("am-gw:2")).toBeUndefined();
  }, 60_000);

  it("a flapping probe target is damped: flapping latches and the hold's end dispatches nothing", async ({
    expect,
  }) => {
    const gateway = stack.labels("flap-gw", "primary").gateway ?? "";
    const down = async () => {
      probes.set(gateway, false);
      await waitFor("flap-gw primary down", async () => (await stack.view("flap-gw")).sides.primary.health === "down");
    };
    const up = async () => {
      probes.set(gateway, true);
      await waitFor(
        "flap-gw primary up",
        async () => (await stack.view("flap-gw")).sides.primary.health === "up",
        30_000,
      );
    };
    await down();
    await up();
    const lastDownAt = Date.now();
    await down();
    const view = await stack.view("flap-gw");
    expect(view.flapping).toBe(true);
    // Past the hold of the last down, the failover is blocked as flapping instead of dispatched.
    const blocked = await waitFor(
      "the failover to be blocked",
      async () => ofType(await stack.events("flap-gw"), "failover.blocked")[0],
      FLAP_HOLD * 1000 + 10_000,
    );
    expect(blocked.detail).toMatchObject({ blocker: "flapping" });
    const events = await stack.events("flap-gw");
    expect(ofType(events, "flapping.latched")).toHaveLength(1);
    expect(ofType(events, "action.dispatched")).toHaveLength(0);
    console.log(
      `[monitoring] flapping: failover blocked ${((Date.parse(blocked.at) - lastDownAt) / 1000).toFixed(2)} s after the last change; no dispatch`,
    );
    probes.set(gateway, true);
  }, 90_000);

  it("Alertmanager re-sends a delivery the worker answered 503, and the worker deduplicates it", async ({ expect }) => {
    const gateway = stack.labels("retry-gw", "primary").gateway ?? "";
    recorder.failOnce((body) => body.includes(`"gateway":"${gateway}"`) && body.includes('"status":"firing"'));
    const changedAt = Date.now();
    probes.set(gateway, false);

    const events = await actionSucceeded("retry-gw");
    const dispatched = ofType(events, "action.dispatched");
    expect(dispatched).toHaveLength(1);
    report("Alertmanager after a 503", changedAt, dispatched[0]);
    const deliveries = amDeliveries(recorder.requests(), gateway, "firing");
    const refused = deliveries.find((r) => r.status === 503);
    if (!refused) throw new Error(`no delivery was answered 503: ${JSON.stringify(deliveries.map((r) => r.status))}`);
    // The same peer sent it again, and this time it was taken.
    const retry = await waitFor("the refused peer's retry", async () =>
      amDeliveries(recorder.requests(), gateway, "firing").find(
        (r) => r.sender === refused.sender && r.at > refused.at && r.status === 200,
      ),
    );
    const alertOf = (r: RecordedRequest) =>
      (JSON.parse(r.body) as { alerts: AmAlert[] }).alerts.find((a) => a.labels.gateway === gateway);
    expect(alertOf(retry)).toMatchObject({
      fingerprint: alertOf(refused)?.fingerprint,
      startsAt: alertOf(refused)?.startsAt,
    });
    const peer = alertmanagers.peers[Number(refused.sender.slice(-1))];
    expect(
      await peer?.metric("alertmanager_notification_requests_failed_total", { integration: "webhook" }),
    ).toBeGreaterThan(0);
    console.log(`[monitoring] Alertmanager retried after ${((retry.at - refused.at) / 1000).toFixed(2)} s`);
    // The 503'd delivery had been recorded: its retry and the other peer's copy are duplicates.
    expect(ofType(await stack.events("retry-gw"), "signal.firing")).toHaveLength(1);
    probes.set(gateway, true);
  }, 60_000);

  it("Nagios 4 with examples/nagios/turnout.cfg: SOFT decides nothing, HARD fails over once, RECOVERY marks up, ACK and downtime are notices and downtime holds", async ({
    expect,
  }) => {
    await checksScenario(expect, {
      target: "egress-gw",
      hosts: { primary: "gw-primary", secondary: "gw-secondary" },
      service: "gateway-probe",
      program: nagios,
      alertLog: () => nagios.log(),
      label: "Nagios 4",
    });
  }, 90_000);

  it("Icinga 2 with examples/icinga2/turnout.conf: SOFT decides nothing, HARD fails over once, RECOVERY marks up, ACK and downtime are notices and downtime holds", async ({
    expect,
  }) => {
    await checksScenario(expect, {
      target: "bootstrap-dns",
      hosts: { primary: "bootstrap-a", secondary: "bootstrap-b" },
      service: "node-probe",
      program: icinga,
      alertLog: () => icinga.alertLog(),
      label: "Icinga 2",
    });
  }, 90_000);
});

interface ChecksScenario {
  target: string;
  hosts: Record<Side, string>;
  service: string;
  program: Pick<NagiosServer, "setState" | "command">;
  alertLog: () => string;
  label: string;
}

/** The four steps of issue 20 for a Nagios-compatible program. */
async function checksScenario(expect: ExpectStatic, s: ChecksScenario): Promise<void> {
  const { target, service } = s;
  const primary = s.hosts.primary;
  const secondary = s.hosts.secondary;
  const keyOf = (host: string) => `nagios:${host}!${service}`;

  // 1. SOFT attempts decide nothing: the program sends nothing for them and the target stays steady.
  const changedAt = Date.now();
  s.program.setState(primary, 2);
  await waitFor(`${s.label}: the first SOFT attempt`, async () =>
    serviceAlerts(s.alertLog(), primary, service).some((l) => l.includes(";CRITICAL;SOFT;1;")),
  );
  const soft = await stack.view(target);
  expect(soft.phase).toBe("steady");
  expect(soft.sides.primary.health).toBe("up");
  expect(ofType(await stack.events(target), "signal.firing")).toHaveLength(0);

  // 2. HARD CRITICAL fails over once.
  const events = await actionSucceeded(target);
  expect(serviceAlerts(s.alertLog(), primary, service).some((l) => l.includes(";CRITICAL;HARD;"))).toBe(true);
  const dispatched = ofType(events, "action.dispatched");
  expect(dispatched).toHaveLength(1);
  report(`${s.label} HARD CRITICAL`, changedAt, dispatched[0]);
  expect((await stack.view(target)).activeSide).toBe("secondary");

  // 3. RECOVERY marks the side up, under the incident the PROBLEM opened; no second action.
  s.program.setState(primary, 0);
  const recovered = await waitFor(`${s.label}: RECOVERY`, async () => {
    const v = await stack.view(target);
    return v.sides.primary.health === "up" ? v : undefined;
  });
  expect(recovered.activeSide).toBe("secondary");
  const afterRecovery = await stack.events(target);
  const opened = ofType(afterRecovery, "signal.firing").find((e) => detailOf(e).key === keyOf(primary));
  const closed = ofType(afterRecovery, "signal.resolved").find((e) => detailOf(e).key === keyOf(primary));
  expect(detailOf(opened).incident).toBeTypeOf("string");
  expect(detailOf(closed).incident).toBe(detailOf(opened).incident);
  const recoveredAt = Date.now();

  // 4. The active side (secondary) fails HARD; an ACK arrives as a notice and holds nothing, a
  //    downtime arrives as a notice and holds the automatic failover back past the hold.
  //    The primary must first be up for riseSeconds (= holdSeconds) to be a destination at all.
  await new Promise((r) => setTimeout(r, Math.max(0, CHECK_HOLD * 1000 + 500 - (Date.now() - recoveredAt))));
  s.program.setState(secondary, 2);
  await waitFor(`${s.label}: the secondary's PROBLEM`, async () => {
    const v = await stack.view(target);
    return v.phase === "pending" ? v : undefined;
  });
  const now = Math.floor(Date.now() / 1000);
  s.program.command(`ACKNOWLEDGE_SVC_PROBLEM;${secondary};${service};2;1;0;turnout-e2e;looking at it`);
  s.program.command(`SCHEDULE_SVC_DOWNTIME;${secondary};${service};${now};${now + 600};1;0;0;turnout-e2e;maintenance`);
  const notices = await waitFor(`${s.label}: the ACK and downtime notices`, async () => {
    const got = (await stack.events(target)).filter(
      (e) => detailOf(e).key === keyOf(secondary) && detailOf(e).notice !== undefined,
    );
    const kinds = got.map((e) => (detailOf(e).notice as { kind?: string }).kind);
    return kinds.includes("acknowledgement") && kinds.includes("downtime") ? got : undefined;
  });
  for (const e of notices) expect(e.type).toBe("signal.notice");
  const held = await stack.view(target);
  expect(held.sides.secondary.health).toBe("down");
  expect(held.phase).toBe("steady");
  // Past the hold nothing is dispatched: the held signal does not count for automatic action.
  await new Promise((r) => setTimeout(r, CHECK_HOLD * 1000 + 2000));
  const final = await stack.events(target);
  expect(ofType(final, "action.dispatched")).toHaveLength(1);
  expect((await stack.view(target)).activeSide).toBe("secondary");

  // 5. A second problem of the primary and its RECOVERY share an incident, a new one: Nagios 4.4
  //    sends that RECOVERY with the previous problem's id in LASTSERVICEPROBLEMID, Icinga with the
  //    recovery's own time in LASTSERVICESTATECHANGE (issue 20's findings).
  const firingOf = async () =>
    ofType(await stack.events(target), "signal.firing").filter((e) => detailOf(e).key === keyOf(primary));
  s.program.setState(primary, 2);
  const again = await waitFor(`${s.label}: the primary's second PROBLEM`, async () => (await firingOf())[1]);
  s.program.setState(primary, 0);
  const closedAgain = await waitFor(
    `${s.label}: the primary's second RECOVERY`,
    async () =>
      ofType(await stack.events(target), "signal.resolved").filter((e) => detailOf(e).key === keyOf(primary))[1],
  );
  expect(detailOf(again).incident).not.toBe(detailOf(opened).incident);
  expect(detailOf(closedAgain).incident).toBe(detailOf(again).incident);
  expect(ofType(await stack.events(target), "action.dispatched")).toHaveLength(1);
}
