"""The SQL the product runs, as source files: one function, trigger or view per file.

Migrations apply the current file through :func:`parley.migrations.sqlsource.apply_sql`, so a
reader finds every database rule here and nowhere else (issue 16, decision record 0029).
"""
