/**
 * Notices real Nagios 4.4.6 and Icinga 2.13.6 send (test/fixtures/SOURCES.md), through the
 * worker's ingest and a TargetObject. The fixtures' hosts are renamed to the fixture-nagios
 * target's secondary host (test/fixtures/worker-test-config.json) so they route; every other
 * field is as recorded.
 */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import icingaFirstDowntime from "../fixtures/icinga2.13.6-real-service-downtimestart-first-ok.form.txt?raw";
import nagiosFirstDowntime from "../fixtures/nagios4.4.6-real-service-downtimestart-first-ok.form.txt?raw";
import { TEST_CREDENTIALS } from "./support/bindings.ts";

const NAGIOS_FORM = {
  authorization: `Bearer ${TEST_CREDENTIALS.nagios}`,
  "content-type": "application/x-www-form-urlencoded",
};
const OPERATOR = { authorization: `Bearer ${TEST_CREDENTIALS.operator}` };
const HOST = "sparta.example.net";

type Event = { type: string; detail: { key?: string; notice?: { kind: string } } };

async function postRenamed(body: string, service: string): Promise<Response> {
  const fields = new URLSearchParams(body);
  fields.set("HOSTNAME", HOST);
  fields.set("SERVICEDESC", service);
  return exports.default.fetch("http://w/v1/nagios", { method: "POST", headers: NAGIOS_FORM, body: fields.toString() });
}

async function eventsOf(key: string): Promise<Event[]> {
  const res = await exports.default.fetch("http://w/v1/targets/fixture-nagios/events?limit=1000", {
    headers: OPERATOR,
  });
  return ((await res.json()) as { events: Event[] }).events.filter((e) => e.detail.key === key);
}

describe("real first DOWNTIMESTART notices", () => {
  // Found with these real payloads (issue 20): the first delivery of a key used to be audited as
  // `signal.<status>` even when it was only a notice, so a downtime scheduled on an OK check
  // nobody had heard of read as `signal.resolved`, where an ACK or a DOWNTIMEEND reads `signal.notice`.
  it.each([
    ["Nagios 4.4.6", nagiosFirstDowntime, "first-downtime-nagios"],
    ["Icinga 2.13.6", icingaFirstDowntime, "first-downtime-icinga"],
  ])("a %s DOWNTIMESTART for a key never seen is audited as signal.notice", async (_name, body, service) => {
    const res = await postRenamed(body, service);
    expect(res.status).toBe(200);
    const events = await eventsOf(`nagios:${HOST}!${service}`);
    expect(events.map((e) => e.type)).toEqual(["signal.notice"]);
    expect(events[0]?.detail.notice?.kind).toBe("downtime");
  });
});
