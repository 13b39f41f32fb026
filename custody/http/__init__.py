"""What the trading API and the approver app share: the runtime, raw bodies, problem+json,
body limits, rate limits. Neither imports the other; `custody.app` puts them together."""
