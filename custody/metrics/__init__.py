"""Domain metrics (`custody_*`) read from the database when Prometheus scrapes.

`custody serve` runs the API, the signers and the background work in separate processes, so a
counter kept in one API process would miss what the others do. The collector here asks the
database instead, at scrape time, with a few aggregate queries: any API process answers for the
whole installation, and a restart loses nothing.
"""
