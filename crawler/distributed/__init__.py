"""Distributed mode: many crawler workers coordinated through Redis."""
