"""Policy versions: applied, proposed under governance, active; the database side of policy."""
