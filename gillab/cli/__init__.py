"""The command line's own leaves: argument types that refuse nonsense in one line,
the --target probe, and what reaches the terminal. Parsers are assembled in
gillab.__main__; each command's arguments live in its own package's cli module."""
