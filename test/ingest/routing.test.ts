import { describe, expect, it } from "vitest";
import { validateWorkerConfig, type WorkerConfig } from "../../shared/config.ts";
import { routeLabels } from "../../worker/engine/routing.ts";

function config(): WorkerConfig {
  const loaded = validateWorkerConfig({
    agent: { url: "http://127.0.0.1:8788" },
    targets: {
      "egress-gw": {
        sides: {
          primary: { anyOf: [['alertname="GatewayDown"', 'gateway="10.0.0.4"'], ['host="gw-a"']] },
          secondary: { anyOf: [['alertname="GatewayDown"', 'gateway=~"10\\\\.0\\\\.0\\\\..*"'], ['host="gw-b"']] },
        },
        policy: {},
      },
      "all-gateways": {
        sides: { primary: { matchers: ['alertname="GatewayDown"'] }, secondary: { matchers: ['alertname="Never"'] } },
        policy: {},
      },
    },
  });
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  return loaded.value;
}

describe("routing", () => {
  it("takes the first side whose matchers all match, primary first", () => {
    const routes = routeLabels(config(), { alertname: "GatewayDown", gateway: "10.0.0.4" });
    expect(routes).toEqual([
      { target: "egress-gw", side: "primary" },
      { target: "all-gateways", side: "primary" },
    ]);
  });

  it("lets one side take an Alertmanager alert and a Nagios check through anyOf", () => {
    expect(routeLabels(config(), { alertname: "GatewayDown", gateway: "10.0.0.12" })[0]).toEqual({
      target: "egress-gw",
      side: "secondary",
    });
    expect(routeLabels(config(), { host: "gw-b", service: "", source: "nagios" })).toEqual([
      { target: "egress-gw", side: "secondary" },
    ]);
  });

  it("routes nowhere when nothing matches (regexes are anchored)", () => {
    expect(routeLabels(config(), { alertname: "GatewayDownX" })).toEqual([]);
    expect(routeLabels(config(), { alertname: "GatewayDown", gateway: "110.0.0.9" })).toEqual([
      { target: "all-gateways", side: "primary" },
    ]);
  });
});
