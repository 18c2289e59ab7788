"""Test support for Agent Bruno (never imported by the services themselves)."""
