/**
 * `notify` (design §11.4, §11.6): sinks name their secrets' env vars, never hold them; severities
 * default per kind and are overridable per kind; a target's own sinks win sink by sink.
 */
import { describe, expect, it } from "vitest";
import { validateWorkerConfig } from "../../shared/config.ts";
import { notifyFor, PagerDutySinkSchema, severityOf } from "../../shared/notify-config.ts";

const base = {
  agent: { url: "http://127.0.0.1:8788" },
  targets: {
    "egress-gw": { sides: { primary: { matchers: ['a="1"'] }, secondary: { matchers: ['a="2"'] } }, policy: {} },
  },
};

describe("notify config", () => {
  it("accepts sinks that name env vars, and refuses a secret in their place, naming the field", () => {
    const ok = validateWorkerConfig({
      ...base,
      notify: {
        pagerduty: { routingKeyEnv: "PAGERDUTY_ROUTING_KEY" },
        opsgenie: { apiKeyEnv: "OPSGENIE_API_KEY" },
        webhooks: [{ url: "https://hooks.example.com/t", secretEnv: "HOOK_SECRET" }],
      },
    });
    expect(ok.ok).toBe(true);
    const bad = validateWorkerConfig({ ...base, notify: { pagerduty: { routingKeyEnv: "R0ut1ng+Key/xyz=" } } });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(JSON.stringify(bad.problems)).toContain("notify.pagerduty.routingKeyEnv");
    const twice = validateWorkerConfig({
      ...base,
      notify: { webhooks: [1, 2].map(() => ({ url: "https://h.example/x", secretEnv: "S" })) },
    });
    expect(twice.ok).toBe(false);
  });

  it("defaults severities per kind (§11.6) and lets one value or some kinds override them", () => {
    const plain = PagerDutySinkSchema.parse({ routingKeyEnv: "K" });
    expect(plain.url).toBe("https://events.pagerduty.com/v2/enqueue");
    expect(severityOf(plain, "action-failed")).toBe("critical");
    expect(severityOf(plain, "blocked")).toBe("critical");
    expect(severityOf(plain, "agent-silent")).toBe("critical");
    expect(severityOf(plain, "approval")).toBe("error");
    expect(severityOf(plain, "break-glass")).toBe("error");
    expect(severityOf(plain, "readiness")).toBe("warning");
    const all = PagerDutySinkSchema.parse({ routingKeyEnv: "K", severity: "info" });
    expect(severityOf(all, "action-failed")).toBe("info");
    const some = PagerDutySinkSchema.parse({ routingKeyEnv: "K", severity: { approval: "critical" } });
    expect(severityOf(some, "approval")).toBe("critical");
    expect(severityOf(some, "readiness")).toBe("warning");
    expect(PagerDutySinkSchema.safeParse({ routingKeyEnv: "K", severity: { approval: "loud" } }).success).toBe(false);
  });

  it("a target's own sinks replace the global ones sink by sink", () => {
    const global = {
      pagerduty: { routingKeyEnv: "A", url: "https://p.example/" },
      webhooks: [{ url: "https://h.example/", secretEnv: "S" }],
    };
    const mine = notifyFor(global, { webhooks: [] });
    expect(mine.pagerduty).toEqual(global.pagerduty);
    expect(mine.webhooks).toEqual([]);
    expect(notifyFor(global, undefined)).toEqual(global);
  });
});
