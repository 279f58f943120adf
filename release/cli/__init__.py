"""The click command line: a thin shell over the library."""
