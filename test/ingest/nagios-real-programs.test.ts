/**
 * Notification bodies recorded from a real Nagios Core 4.4.6 and Icinga 2.13.6 (Debian 12)
 * running the shipped examples/nagios/turnout.cfg and examples/icinga2/turnout.conf
 * (test/fixtures/SOURCES.md): what they send differs from the hand-written fixtures, and these
 * tests pin the incident each notification is filed under.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { Signal } from "../../worker/engine/signals.ts";
import { formFields, parseNagios } from "../../worker/http/ingest/nagios.ts";
import { parsedOk } from "../support/parsed-ok.ts";

const NOW = 1_800_000_000_000;
const form = (name: string) => formFields(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8"));

const ok = (body: unknown): Signal => parsedOk(parseNagios(body, NOW)).signal;

describe("Nagios Core 4.4.6, as it really sends", () => {
  it("files a RECOVERY under the problem it ends: 4.4 still sends that id in SERVICEPROBLEMID (the previous one in LAST…)", () => {
    const problem = ok(form("nagios4.4.6-real-service-problem-second.form.txt"));
    const recovery = ok(form("nagios4.4.6-real-service-recovery-second.form.txt"));
    expect(problem).toMatchObject({ status: "firing", incident: "nagios:gw-primary!gateway-probe#problem:2" });
    expect(recovery).toMatchObject({ status: "resolved", incident: "nagios:gw-primary!gateway-probe#problem:2" });
  });

  it("files a RECOVERY from a release that clears the id first (SERVICEPROBLEMID=0) under LAST…PROBLEMID", () => {
    const cleared = {
      ...form("nagios4.4.6-real-service-recovery-second.form.txt"),
      SERVICEPROBLEMID: "0",
      LASTSERVICEPROBLEMID: "2",
    };
    expect(ok(cleared).incident).toBe("nagios:gw-primary!gateway-probe#problem:2");
  });

  it("files a host RECOVERY under its problem: for hosts 4.4.6 clears HOSTPROBLEMID first (0, the id in LAST…)", () => {
    const problem = ok(form("nagios4.4.6-real-host-problem-second.form.txt"));
    const recovery = ok(form("nagios4.4.6-real-host-recovery-second.form.txt"));
    expect(problem).toMatchObject({ status: "firing", incident: "nagios:gw-primary!#problem:2" });
    expect(recovery).toMatchObject({ status: "resolved", incident: "nagios:gw-primary!#problem:2" });
  });

  it("takes the first non-zero of HOSTPROBLEMID, LASTHOSTPROBLEMID, as for services, when a host RECOVERY keeps its id", () => {
    const kept = {
      ...form("nagios4.4.6-real-host-recovery-second.form.txt"),
      HOSTPROBLEMID: "2",
      LASTHOSTPROBLEMID: "1",
    };
    expect(ok(kept).incident).toBe("nagios:gw-primary!#problem:2");
  });

  it("files the ACK and the DOWNTIMESTART of a problem under that problem, as notices", () => {
    const ack = ok(form("nagios4.4.6-real-service-acknowledgement.form.txt"));
    const downtime = ok(form("nagios4.4.6-real-service-downtimestart-in-problem.form.txt"));
    expect(ack).toMatchObject({
      status: "firing",
      incident: "nagios:gw-secondary!gateway-probe#problem:2",
      notice: { kind: "acknowledgement", author: "turnout-e2e", comment: "looking at it" },
    });
    expect(downtime).toMatchObject({
      status: "firing",
      incident: "nagios:gw-secondary!gateway-probe#problem:2",
      notice: { kind: "downtime", active: true },
    });
  });
});

describe("Icinga 2.13.6, as it really sends", () => {
  it("files a service PROBLEM and its RECOVERY under one incident (LAST… on PROBLEM = PREVIOUS… on RECOVERY)", () => {
    const problem = ok(form("icinga2.13.6-real-service-problem.form.txt"));
    const recovery = ok(form("icinga2.13.6-real-service-recovery.form.txt"));
    expect(problem).toMatchObject({ status: "firing", incident: "nagios:bootstrap-a!node-probe#since:1796117436" });
    expect(recovery).toMatchObject({ status: "resolved", incident: problem.incident });
    // The recovery's own last_state_change is the recovery: keyed by it, it would never match.
    expect(recovery.incident).not.toContain(form("icinga2.13.6-real-service-recovery.form.txt").LASTSERVICESTATECHANGE);
  });

  it("files a host PROBLEM and its RECOVERY under one incident", () => {
    const problem = ok(form("icinga2.13.6-real-host-problem.form.txt"));
    const recovery = ok(form("icinga2.13.6-real-host-recovery.form.txt"));
    expect(problem).toMatchObject({ status: "firing", incident: "nagios:bootstrap-a!#since:1796117454" });
    expect(recovery).toMatchObject({ status: "resolved", incident: problem.incident });
  });

  it("files the ACK and the DOWNTIMESTART of a problem under that problem, as notices", () => {
    const problemIncident = "nagios:bootstrap-b!node-probe#since:1796117372";
    expect(ok(form("icinga2.13.6-real-service-acknowledgement.form.txt"))).toMatchObject({
      incident: problemIncident,
      notice: { kind: "acknowledgement", author: "turnout-e2e" },
    });
    expect(ok(form("icinga2.13.6-real-service-downtimestart-in-problem.form.txt"))).toMatchObject({
      incident: problemIncident,
      notice: { kind: "downtime", active: true },
    });
  });
});
