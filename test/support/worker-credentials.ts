/**
 * The credentials of a worker a test file starts itself (`startWorker`): the legacy operator
 * token, named identities (design §3a), the Alertmanager token and the agent secret, and the
 * worker vars that grant exactly them. Prefixed per file, so a token can never pass a sibling
 * file's worker; named tokens are long enough for OPERATOR_TOKENS. Pure: no Node imports.
 */

/** A named identity of OPERATOR_TOKENS. */
export interface Identity {
  token: string;
  role: "operator" | "viewer";
}

export interface WorkerCredentials {
  /** The legacy OPERATOR_TOKEN (identity "operator"). */
  operator: string;
  /** A viewer's named token. */
  viewer: string;
  alertmanager: string;
  agentSecret: string;
}

/** The credentials `<prefix>-operator-token`, `<prefix>-viewer-token-000001`, `<prefix>-am-token`, `<prefix>-agent-secret`. */
export function workerCredentials(prefix: string): WorkerCredentials {
  return {
    operator: `${prefix}-operator-token`,
    viewer: `${prefix}-viewer-token-000001`,
    alertmanager: `${prefix}-am-token`,
    agentSecret: `${prefix}-agent-secret`,
  };
}

/** The worker vars granting `credentials`: the viewer as `viewerName`, plus `more` named identities. */
export function credentialVars(
  credentials: WorkerCredentials,
  viewerName: string,
  more: Record<string, Identity> = {},
) {
  return {
    OPERATOR_TOKEN: credentials.operator,
    OPERATOR_TOKENS: JSON.stringify({ ...more, [viewerName]: { token: credentials.viewer, role: "viewer" } }),
    ALERTMANAGER_TOKEN: credentials.alertmanager,
    TURNOUT_AGENT_SECRET: credentials.agentSecret,
  };
}
