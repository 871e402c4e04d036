"""Placeholder until the owner fills it in."""

import dagster as dg

defs = dg.Definitions()
