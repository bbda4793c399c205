"""Reports people read: the outcome report, the data-quality dashboard and Data Docs.

Rendering is pure (tables in, HTML text out: `outcome`, `dashboard`); reading the
warehouse (`data`), Data Docs (`datadocs`), PDF (`pdf`) and writing files (`api`)
are kept apart so tests can feed literal tables.
"""
