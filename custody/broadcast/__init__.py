"""Connected chains: sending signed transactions and following them to finality."""
