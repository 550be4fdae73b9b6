"""Executing plans: routing hooks, building ``ctx``, workflows, retries, events."""
