"""Everest: the REST client and login, the resource config, the application export.

Public REST API facts (auth, apps, jobs, files) are in shared/facts/everest.md;
the resource API is not public, so the resource config is our own document
(``resource_config.schema.json``) sent to a configurable endpoint or written to
a file for the web UI.
"""
