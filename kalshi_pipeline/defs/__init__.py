"""The Dagster adapter: assets, checks, jobs, sensors, automation and resources, one folder per concern.

Loaded by `kalshi_pipeline.definitions` with Dagster's defs-folder loader; nothing here is listed by hand.
"""
