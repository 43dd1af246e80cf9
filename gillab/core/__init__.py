"""What every command shares and nothing measures: statistics, the executor registry,
the environment, errors and exit codes, JSON schemas and the hard-stop helpers.
No module here reads a clock."""
