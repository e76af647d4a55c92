/**
 * Posts a one-alert Alertmanager webhook to the worker under test (workerd `exports.default`)
 * with the test project's bearer token (vitest.config.ts: ALERTMANAGER_TOKEN = test-am-token).
 */
import { exports } from "cloudflare:workers";
import { type AlertSpec, alertmanagerBody } from "../../support/alertmanager-body.ts";

/** POSTs `alert` to `${origin}/v1/alertmanager`; the caller checks the answer. */
export function postAlert(alert: AlertSpec, origin = "http://w"): Promise<Response> {
  return exports.default.fetch(`${origin}/v1/alertmanager`, {
    method: "POST",
    headers: { authorization: "Bearer test-am-token", "content-type": "application/json" },
    body: JSON.stringify(alertmanagerBody(alert)),
  });
}
