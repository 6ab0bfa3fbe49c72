"""The export job: its spec and identity, its states and their atomic transitions (the one
module that owns them), attempt leases and fencing, end-of-job events, estimates, outcomes
and queue routing.
"""
