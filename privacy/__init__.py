"""Everything that reads the sensitive data under a differential-privacy guarantee."""
