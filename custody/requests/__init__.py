"""The request lifecycle: states, queries and how a request is shown to its client."""
