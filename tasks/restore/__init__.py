"""Glacier restore jobs: their records and admission in Redis."""
