import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { labelsFingerprint, parseAlertmanager, parseRfc3339 } from "../../worker/http/ingest/alertmanager.ts";
import { parsedOk } from "../support/parsed-ok.ts";

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8"));
const NOW = Date.parse("2026-11-22T12:00:00Z");

const ok = (body: unknown) => parsedOk(parseAlertmanager(body, NOW));

describe("Alertmanager normalization", () => {
  it("reproduces Alertmanager's fingerprints from labels, so the fallback key matches a modern sender's", () => {
    for (const name of ["am-resolved-unicode.json", "am-firing-truncated-derived.json"]) {
      const body = fixture(name) as { alerts: { labels: Record<string, string>; fingerprint: string }[] };
      for (const alert of body.alerts) expect(labelsFingerprint(alert.labels)).toBe(alert.fingerprint);
    }
  });

  it("keys alerts without a fingerprint by the hash of their sorted labels, whatever the label order", () => {
    const [firing, resolved] = ok(fixture("am-mixed-firing-resolved-issue1051.json")).signals;
    expect(firing?.key).toBe(`am:${labelsFingerprint({ alertname: "ServerStop", env: "prod", status: "firing" })}`);
    expect(labelsFingerprint({ b: "2", a: "1" })).toBe(labelsFingerprint({ a: "1", b: "2" }));
    // Per-alert status, never the group's "firing".
    expect([firing?.status, resolved?.status]).toEqual(["firing", "resolved"]);
  });

  it("treats fingerprints as opaque: identical labels with different fingerprints are two signals", () => {
    const signals = ok(fixture("am-firing-2alerts-zulip.json")).signals;
    expect(signals.map((s) => s.key)).toEqual(["am:a1bc48475b20e73d", "am:c2ea85182f28cbd9"]);
  });

  it("uses startsAt for firing, endsAt for resolved, and the receipt time for a zero endsAt", () => {
    const [firing] = ok(fixture("am-firing-2alerts-zulip.json")).signals;
    expect(firing?.at).toBe(Date.parse("2020-02-06T00:17:58.432Z"));
    const [resolved] = ok(fixture("am-resolved-unicode.json")).signals;
    expect(resolved?.at).toBe(Date.parse("2023-03-25T07:27:51.039Z"));
    const [zero] = ok(fixture("am-resolved-zero-endsAt-zulip.json")).signals;
    expect(zero).toMatchObject({ status: "resolved", at: NOW });
  });

  it("keys the incident by fingerprint and the raw startsAt, nanoseconds and offset included", () => {
    const [s] = ok(fixture("am-firing-truncated-derived.json")).signals;
    expect(s?.incident).toBe("am:72a2002704e27a2e@2023-03-25T14:39:51.68943305+08:00");
  });

  it("parses RFC 3339 with offsets and nanoseconds, and Go's zero time as unset", () => {
    expect(parseRfc3339("2023-03-25T14:39:51.68943305+08:00")).toBe(Date.parse("2023-03-25T06:39:51.689Z"));
    expect(parseRfc3339("2017-10-21T15:50:17.16095407-02:00")).toBe(Date.parse("2017-10-21T17:50:17.160Z"));
    expect(parseRfc3339("0001-01-01T00:00:00Z")).toBeNull();
  });

  it("adds source=alertmanager and keys am:<fingerprint> for v4 and Grafana-managed v1 alike (design §4)", () => {
    expect(ok(fixture("am-resolved-unicode.json")).signals[0]?.labels.source).toBe("alertmanager");
    const grafana = ok(fixture("grafana-firing-values-v11-zulip.json"));
    expect(grafana.source).toBe("alertmanager");
    expect(grafana.signals[0]).toMatchObject({
      source: "alertmanager",
      key: "am:e6349a25f5ef0e9e",
      labels: { source: "alertmanager" },
    });
  });

  it("warns about truncated alerts", () => {
    expect(ok(fixture("grafana-resolved-truncated1-v8-zulip.json")).warnings).toMatchObject([
      { type: "ingest.truncated", detail: { truncatedAlerts: 1, source: "alertmanager", version: "1" } },
    ]);
    expect(ok(fixture("am-resolved-unicode.json")).warnings).toEqual([]);
  });

  it("rejects other versions and names each failing path", () => {
    const parsed = parseAlertmanager({ version: "3", alerts: [{ status: "x", labels: [], startsAt: 5 }] }, NOW);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.errors.map((e) => e.path)).toEqual(
      expect.arrayContaining(["version", "alerts.0.status", "alerts.0.labels", "alerts.0.startsAt"]),
    );
  });
});
