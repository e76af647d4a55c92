import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { Signal } from "../../worker/engine/signals.ts";
import { formFields, parseNagios } from "../../worker/http/ingest/nagios.ts";
import { parsedOk } from "../support/parsed-ok.ts";

const text = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8");
const json = (name: string) => JSON.parse(text(name)) as Record<string, string>;
const NOW = 1_800_000_000_000;

const ok = (body: unknown): Signal => parsedOk(parseNagios(body, NOW)).signal;

describe("Nagios/Icinga normalization", () => {
  it("turns a HARD service PROBLEM into a firing signal keyed host!service", () => {
    expect(ok(json("nagios-service-problem-hard.json"))).toEqual({
      source: "nagios",
      key: "nagios:SERVER!HTTP vhost https://URL",
      incident: "nagios:SERVER!HTTP vhost https://URL#problem:17342",
      status: "firing",
      soft: false,
      labels: {
        host: "SERVER",
        service: "HTTP vhost https://URL",
        state: "CRITICAL",
        state_type: "HARD",
        source: "nagios",
      },
      annotations: {
        notification_type: "PROBLEM",
        output: "HTTP CRITICAL: HTTP/1.1 502 Bad Gateway - 178 bytes in 0.054 second response time",
        origin: "nagios",
        problem_id: "17342",
      },
      at: 1_620_246_538_000,
      receivedAt: NOW,
    });
  });

  it("gives identical signals for form and JSON bodies", () => {
    expect(ok(formFields(text("nagios-service-problem-hard.form.txt")))).toEqual(
      ok(json("nagios-service-problem-hard.json")),
    );
    const recovery = ok(formFields(text("nagios-host-recovery.form.txt")));
    const asJson = ok(JSON.parse(JSON.stringify(formFields(text("nagios-host-recovery.form.txt")))));
    expect(recovery).toEqual(asJson);
  });

  it("closes the incident the PROBLEM opened: RECOVERY uses LAST…PROBLEMID", () => {
    const down = ok(json("nagios-host-down-problem.json"));
    const up = ok(formFields(text("nagios-host-recovery.form.txt")));
    expect(down).toMatchObject({ status: "firing", key: "nagios:sparta.example.net!" });
    expect(up).toMatchObject({ status: "resolved", key: down.key, incident: down.incident });
  });

  it("records SOFT states as soft (an event handler sends an empty NOTIFICATIONTYPE)", () => {
    expect(ok(json("nagios-service-problem-soft-eventhandler.json"))).toMatchObject({ status: "firing", soft: true });
  });

  it("records an acknowledgement as a notice with its author and comment", () => {
    expect(ok(json("nagios-service-acknowledgement.json")).notice).toEqual({
      kind: "acknowledgement",
      author: "nagiosadmin",
      comment: "looking into the 502 from the upstream",
    });
  });

  it.each([
    ["FLAPPINGSTART", { kind: "flapping", active: true }],
    ["FLAPPINGSTOP", { kind: "flapping", active: false }],
    ["FLAPPINGEND", { kind: "flapping", active: false }],
    ["DOWNTIMESTART", { kind: "downtime", active: true }],
    ["DOWNTIMEEND", { kind: "downtime", active: false }],
    ["DOWNTIMECANCELLED", { kind: "downtime", active: false }],
  ])("maps %s to a hold notice", (type, notice) => {
    const body = { ...json("icinga2-service-problem.json"), NOTIFICATIONTYPE: type };
    expect(ok(body)).toMatchObject({ status: "firing", notice });
  });

  it("treats literal unexpanded macros as empty: $SERVICEDESC$ makes a host notification", () => {
    const body = {
      ...json("nagios-host-down-problem.json"),
      SERVICEDESC: "$SERVICEDESC$",
      SERVICESTATE: "$SERVICESTATE$",
    };
    expect(ok(body)).toMatchObject({ key: "nagios:sparta.example.net!", labels: { service: "", state: "DOWN" } });
  });

  it("keys an Icinga 2 incident without problem ids by its last state change", () => {
    expect(ok(json("icinga2-service-problem.json"))).toMatchObject({
      key: "nagios:icinga2-agent1.localdomain!ping4",
      incident: "nagios:icinga2-agent1.localdomain!ping4#since:1388748188",
      annotations: { origin: "icinga2" },
    });
  });

  it("names the missing fields of the Icinga Notifications default body", () => {
    const parsed = parseNagios(json("icinga-notifications-webhook-default-body.json"), NOW);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.errors.map((e) => e.path)).toEqual([
      "(root)",
      "contact",
      "object",
      "incident",
      "event",
      "NOTIFICATIONTYPE",
      "HOSTNAME",
      "HOSTSTATE",
    ]);
  });

  it("rejects an unknown notification type and a service body without SERVICESTATE", () => {
    const parsed = parseNagios({ NOTIFICATIONTYPE: "EXPLODED", HOSTNAME: "h", SERVICEDESC: "s" }, NOW);
    expect(parsed.ok ? [] : parsed.errors.map((e) => e.path)).toEqual(["NOTIFICATIONTYPE", "SERVICESTATE"]);
  });
});
