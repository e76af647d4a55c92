/**
 * A one-alert Alertmanager webhook body (version 4) for tests that post to `/v1/alertmanager`.
 * Pure on purpose: no Node imports, so workerd tests (test/worker) and Node tests share it.
 * Field set as in Alertmanager's webhook payload (docs/wire-formats.md, fixtures/alertmanager).
 */

/** The one alert of the body; times are epoch milliseconds. */
export interface AlertSpec {
  labels: Record<string, string>;
  fingerprint: string;
  startsAt: number;
  /** Defaults to "firing"; also the group status, since the body carries this alert only. */
  status?: "firing" | "resolved";
  /** When a resolved alert ended; a firing alert always gets Alertmanager's zero time. */
  endsAt?: number;
}

/** Alertmanager's "not ended" timestamp for a firing alert. */
const ZERO_TIME = "0001-01-01T00:00:00Z";

/** Builds the webhook body (an object; callers `JSON.stringify` it) carrying `alert` alone. */
export function alertmanagerBody(alert: AlertSpec) {
  const status = alert.status ?? "firing";
  return {
    version: "4",
    groupKey: "{}:{}",
    truncatedAlerts: 0,
    status,
    receiver: "turnout",
    groupLabels: {},
    commonLabels: {},
    commonAnnotations: {},
    externalURL: "http://am",
    alerts: [
      {
        status,
        labels: alert.labels,
        annotations: {},
        startsAt: new Date(alert.startsAt).toISOString(),
        endsAt: status === "resolved" ? new Date(alert.endsAt ?? alert.startsAt).toISOString() : ZERO_TIME,
        generatorURL: "",
        fingerprint: alert.fingerprint,
      },
    ],
  };
}

/** POSTs `body` (an `alertmanagerBody`) to the worker's `/v1/alertmanager` with `token`; its answer. */
export function postAlertmanager(workerUrl: string, token: string, body: object): Promise<Response> {
  return fetch(`${workerUrl}/v1/alertmanager`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}
