import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { formFields, parseNagios } from "../../worker/http/ingest/nagios.ts";
import amTwo from "../fixtures/am-firing-2alerts-zulip.json" with { type: "json" };
import amTruncated from "../fixtures/am-firing-truncated-derived.json" with { type: "json" };
import amMixed from "../fixtures/am-mixed-firing-resolved-issue1051.json" with { type: "json" };
import amUnicode from "../fixtures/am-resolved-unicode.json" with { type: "json" };
import amZeroEnds from "../fixtures/am-resolved-zero-endsAt-zulip.json" with { type: "json" };
import grafanaDocs from "../fixtures/grafana-docs-firing-2alerts-values.json" with { type: "json" };
import grafanaV11 from "../fixtures/grafana-firing-values-v11-zulip.json" with { type: "json" };
import grafanaV8 from "../fixtures/grafana-resolved-truncated1-v8-zulip.json" with { type: "json" };
import icingaNotifications from "../fixtures/icinga-notifications-webhook-default-body.json" with { type: "json" };
import icinga2Problem from "../fixtures/icinga2-service-problem.json" with { type: "json" };
import nagiosHostDown from "../fixtures/nagios-host-down-problem.json" with { type: "json" };
import nagiosHostRecoveryForm from "../fixtures/nagios-host-recovery.form.txt?raw";
import nagiosAck from "../fixtures/nagios-service-acknowledgement.json" with { type: "json" };
import nagiosHardForm from "../fixtures/nagios-service-problem-hard.form.txt?raw";
import nagiosHard from "../fixtures/nagios-service-problem-hard.json" with { type: "json" };
import nagiosSoft from "../fixtures/nagios-service-problem-soft-eventhandler.json" with { type: "json" };
import nagiosRecovery from "../fixtures/nagios-service-recovery.json" with { type: "json" };

const AM = { authorization: "Bearer test-am-token", "content-type": "application/json" };
const NAGIOS_JSON = { authorization: "Bearer test-nagios-token", "content-type": "application/json" };
const NAGIOS_FORM = { authorization: "Bearer test-nagios-token", "content-type": "application/x-www-form-urlencoded" };
const OPERATOR = { authorization: "Bearer test-operator-token" };

type Problem = { status: number; detail: string; errors?: { path: string; message: string }[] };
type Counts = { accepted: number; duplicates: number; ignored: number; targets: string[] };

async function post(path: string, headers: Record<string, string>, body: string): Promise<Response> {
  return exports.default.fetch(`http://w${path}`, { method: "POST", headers, body });
}

async function events(target: string): Promise<{ type: string; detail: Record<string, unknown> }[]> {
  const res = await exports.default.fetch(`http://w/v1/targets/${target}/events?limit=1000`, { headers: OPERATOR });
  return ((await res.json()) as { events: { type: string; detail: Record<string, unknown> }[] }).events;
}

describe("Alertmanager and Grafana fixtures", () => {
  it.each([
    ["am-firing-2alerts-zulip.json", amTwo, 2],
    ["am-firing-truncated-derived.json", amTruncated, 2],
    ["am-resolved-unicode.json", amUnicode, 1],
    ["am-resolved-zero-endsAt-zulip.json", amZeroEnds, 1],
    ["grafana-docs-firing-2alerts-values.json", grafanaDocs, 2],
    ["grafana-firing-values-v11-zulip.json", grafanaV11, 1],
    ["grafana-resolved-truncated1-v8-zulip.json", grafanaV8, 1],
  ])("accepts %s and routes every alert to fixture-am", async (_name, body, alerts) => {
    const res = await post("/v1/alertmanager", AM, JSON.stringify(body));
    expect(res.status).toBe(200);
    const counts = (await res.json()) as Counts;
    expect(counts.targets).toEqual(["fixture-am"]);
    expect(counts.accepted + counts.duplicates + counts.ignored).toBe(alerts);
  });

  it("accepts the pre-fingerprint body of issue #1051 with per-alert status and label-hash keys", async () => {
    const res = await post("/v1/alertmanager", AM, JSON.stringify(amMixed));
    expect(res.status).toBe(200);
    const signals = await env.TARGETS.getByName("fixture-am").signals();
    const serverStop = signals.filter((s) => s.labels.alertname === "ServerStop");
    expect(serverStop.map((s) => [s.status, s.key]).sort()).toEqual([
      ["firing", "am:44a6bafcce26446c"],
      ["resolved", "am:3b5243b8c35ebdce"],
    ]);
  });

  it("stores Grafana-managed alerts like Alertmanager ones: source alertmanager, key am:<fingerprint>", async () => {
    await post("/v1/alertmanager", AM, JSON.stringify(grafanaV11));
    await post("/v1/alertmanager", AM, JSON.stringify(amTwo));
    const signals = await env.TARGETS.getByName("fixture-am").signals();
    expect(signals.find((s) => s.key === "am:e6349a25f5ef0e9e")).toMatchObject({
      source: "alertmanager",
      labels: { source: "alertmanager" },
    });
    expect(signals.find((s) => s.key === "am:a1bc48475b20e73d")?.source).toBe("alertmanager");
  });

  it("records truncatedAlerts as a warning in the audit log", async () => {
    await post("/v1/alertmanager", AM, JSON.stringify(amTruncated));
    const warning = (await events("fixture-am")).find((e) => e.type === "ingest.truncated");
    expect(warning?.detail).toMatchObject({ truncatedAlerts: 1, source: "alertmanager" });
  });

  it.each([
    ["a legacy version", { ...amTwo, version: "3" }],
    ["no version", { receiver: "x", alerts: [] }],
  ])("rejects %s with a 400 naming version", async (_name, body) => {
    const res = await post("/v1/alertmanager", AM, JSON.stringify(body));
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    const problem = (await res.json()) as Problem;
    expect(problem.errors?.map((e) => e.path)).toContain("version");
  });

  it("names every failing path of a malformed alert", async () => {
    const bad = { version: "4", alerts: [{ status: "burning", labels: { a: 1 }, startsAt: "yesterday" }] };
    const res = await post("/v1/alertmanager", AM, JSON.stringify(bad));
    expect(res.status).toBe(400);
    const paths = ((await res.json()) as Problem).errors?.map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(["alerts.0.status", "alerts.0.labels.a", "alerts.0.startsAt"]));
  });

  it("answers a body over 1 MiB with 413", async () => {
    const res = await post("/v1/alertmanager", AM, " ".repeat(1024 * 1024 + 1));
    expect(res.status).toBe(413);
  });

  it("answers a body that is not JSON with 400", async () => {
    const res = await post("/v1/alertmanager", AM, "{nope");
    expect(res.status).toBe(400);
    expect(((await res.json()) as Problem).errors?.[0]?.path).toBe("(root)");
  });
});

describe("Nagios and Icinga fixtures", () => {
  it.each([
    ["nagios-host-down-problem.json", nagiosHostDown],
    ["nagios-service-acknowledgement.json", nagiosAck],
    ["nagios-service-problem-hard.json", nagiosHard],
    ["nagios-service-problem-soft-eventhandler.json", nagiosSoft],
    ["nagios-service-recovery.json", nagiosRecovery],
    ["icinga2-service-problem.json", icinga2Problem],
  ])("accepts %s as JSON", async (_name, body) => {
    const res = await post("/v1/nagios", NAGIOS_JSON, JSON.stringify(body));
    expect(res.status).toBe(200);
    expect(((await res.json()) as Counts).targets).toEqual(["fixture-nagios"]);
  });

  it.each([
    ["nagios-host-recovery.form.txt", nagiosHostRecoveryForm],
    ["nagios-service-problem-hard.form.txt", nagiosHardForm],
  ])("accepts %s as form fields", async (_name, body) => {
    const res = await post("/v1/nagios", NAGIOS_FORM, body);
    expect(res.status).toBe(200);
    expect(((await res.json()) as Counts).targets).toEqual(["fixture-nagios"]);
  });

  it("gives identical signals for the form and JSON spellings of one notification", () => {
    expect(parseNagios(formFields(nagiosHardForm), 1)).toEqual(parseNagios(nagiosHard, 1));
  });

  it("answers a re-sent notification in either encoding as a duplicate", async () => {
    // A service of its own, so the other tests' recovery of the fixture's service does not interfere.
    const json = await post("/v1/nagios", NAGIOS_JSON, JSON.stringify({ ...nagiosHard, SERVICEDESC: "dup-check" }));
    expect(await json.json()).toMatchObject({ accepted: 1, duplicates: 0 });
    const resent = nagiosHardForm
      .replace("SERVICEDESC=HTTP+vhost+https%3A%2F%2FURL", "SERVICEDESC=dup-check")
      .replace("TIMET=1620246538", "TIMET=1620246600");
    const form = await post("/v1/nagios", NAGIOS_FORM, resent);
    expect(await form.json()).toMatchObject({ accepted: 0, duplicates: 1, ignored: 0 });
  });

  it("rejects the Icinga Notifications default body with a 400 naming the missing fields", async () => {
    const res = await post("/v1/nagios", NAGIOS_JSON, JSON.stringify(icingaNotifications));
    expect(res.status).toBe(400);
    const problem = (await res.json()) as Problem;
    const paths = problem.errors?.map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(["NOTIFICATIONTYPE", "HOSTNAME", "HOSTSTATE"]));
    expect(problem.errors?.[0]?.message).toMatch(/Icinga Notifications/);
  });

  it("answers an unsupported media type with 415", async () => {
    const res = await post("/v1/nagios", { ...NAGIOS_JSON, "content-type": "text/plain" }, "HOSTNAME=x");
    expect(res.status).toBe(415);
  });
});
