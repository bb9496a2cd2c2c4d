"""Starter cassettes, installed as ``streamtape.cassettes``: see README.md beside this file."""
