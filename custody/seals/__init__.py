"""The configuration seal: what the signer trusts about clients, approvers, wallets and policy.

A database insider can rewrite any row. So every state of the configuration that decides what
gets signed (chains, assets, venues, prices, keys, wallets, clients and their keys, approvers
with their groups, device keys and passkeys, the applied policy versions) is written as one
canonical document and signed by the installation root key in the HSM. The signer rebuilds the
document from the rows it is about to use and releases nothing unless it equals the newest seal.
"""
