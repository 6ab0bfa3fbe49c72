"""Who may read and write what: object ownership and claims, the rules for client-supplied
keys, the image store and per-user rate limits.
"""
