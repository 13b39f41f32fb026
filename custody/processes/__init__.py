"""The processes of a running custody, and the supervisor that keeps them running.

`custody serve` is a supervisor with children, each forked by the supervisor's fork server: a
fresh interpreter that imports the children's code once and never touches the HSM or the
database, so a PKCS#11 library is initialised only in the process that uses it, never inherited
across a fork, and a child (or its restart) starts in milliseconds:

- `api-1` … `api-N`: uvicorn serving the app, all accepting on one listening socket the
  supervisor bound, so a restarting API process loses no connection;
- `signer-1` … `signer-M`: the signer worker loop;
- `background`: the checkpointer and the webhook runner; it signs a final checkpoint when the
  tree stops.

An HSM call that stalls holds the GIL of its own process only: the API keeps answering.
`custody worker` is the same supervisor without API processes.
"""
