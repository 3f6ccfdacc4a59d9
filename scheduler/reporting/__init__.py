"""What the history says: Prometheus metrics, pandas reports (CSV / HTML / Parquet / FOCUS), right-sizing
and terminal tables. Imports ``core`` and ``store`` only."""
