"""``gillab compare``: the engine plans and measures the matrix, cells turns each
measurement into a judged record, verdict words it, report and report_across draw it,
across runs it under other Pythons; cli is the command."""
