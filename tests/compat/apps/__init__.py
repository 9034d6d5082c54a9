"""Apps as users deploy them on Lambda today, run unchanged by every runtime the suite compares."""
