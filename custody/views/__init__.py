"""How requests look to their clients: the one view the API, intake replays and webhooks share."""
