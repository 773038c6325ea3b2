"""The ``hcnet`` subcommands, one module each (``main(argv)``): argument parsing and
messages only; the work is done by the library modules they call."""
