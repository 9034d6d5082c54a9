"""Event sources: where jobs come from and where their answers go."""
