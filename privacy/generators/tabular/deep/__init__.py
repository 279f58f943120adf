"""Deep DP generators for tables (DP-SGD through opacus, and smartnoise's PATECTGAN)."""
