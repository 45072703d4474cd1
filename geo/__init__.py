"""PostGIS geography: regions, grids, key sites, coverage, rules and audits, importers, CRS."""
