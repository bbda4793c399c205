"""CDISC ADaM datasets (ADSL, ADEFF, ADTTE) from the derived tables, as SAS transport or Dataset-JSON.

build.py runs one SQL file per dataset (adsl.sql, adeff.sql, adtte.sql, after effective.sql)
in the export's derivation connection; variables.csv and params.csv hold the metadata;
xpt.py and dataset_json.py write the files; write.py puts them and adam_metadata.csv in a folder.
Statisticians' guide: docs/adam.md.
"""
