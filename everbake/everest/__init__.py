"""Everest: the REST API client, jobs and sweeps."""
