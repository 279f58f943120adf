"""Everything that measures a synthetic dataset against the real one. Audits never charge budget."""
