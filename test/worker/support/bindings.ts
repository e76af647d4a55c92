/**
 * The credentials the worker project's Miniflare bindings grant (vitest.config.ts builds its
 * bindings from these), so a worker test names a credential instead of repeating its value and
 * a changed token cannot leave a test asserting against the old one.
 */
export const TEST_CREDENTIALS = {
  alertmanager: "test-am-token",
  nagios: "test-nagios-token",
  /** The legacy OPERATOR_TOKEN. */
  operator: "test-operator-token",
  /** Named identities (design §3a): a viewer and a second operator for two-person tests. */
  viewer: "test-viewer-token-0001",
  bob: "test-bob-operator-token",
  slackSigningSecret: "test-slack-secret",
  agentSecret: "test-agent-secret",
  /** Paging (design §11.4): a PagerDuty integration key is 32 characters; the webhook secret is Standard Webhooks' `whsec_<base64>`. */
  pagerdutyRoutingKey: "R0ut1ngKeyForTheTestsOnly0000001",
  opsgenieApiKey: "test-opsgenie-api-key-0001",
  webhookSecret: "whsec_dGVzdC13ZWJob29rLXNlY3JldC1mb3ItcGFnaW5n",
} as const;

/** The credential bindings of the worker project (everything but TURNOUT_CONFIG). */
export const credentialBindings = {
  ALERTMANAGER_TOKEN: TEST_CREDENTIALS.alertmanager,
  NAGIOS_TOKEN: TEST_CREDENTIALS.nagios,
  OPERATOR_TOKEN: TEST_CREDENTIALS.operator,
  OPERATOR_TOKENS: JSON.stringify({
    viewer: { token: TEST_CREDENTIALS.viewer, role: "viewer" },
    bob: { token: TEST_CREDENTIALS.bob, role: "operator" },
  }),
  SLACK_SIGNING_SECRET: TEST_CREDENTIALS.slackSigningSecret,
  TURNOUT_AGENT_SECRET: TEST_CREDENTIALS.agentSecret,
  TEST_PAGERDUTY_ROUTING_KEY: TEST_CREDENTIALS.pagerdutyRoutingKey,
  TEST_OPSGENIE_API_KEY: TEST_CREDENTIALS.opsgenieApiKey,
  TEST_WEBHOOK_SECRET: TEST_CREDENTIALS.webhookSecret,
};
