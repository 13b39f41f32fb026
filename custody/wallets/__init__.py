"""Chains, key records and wallets as the database knows them."""
