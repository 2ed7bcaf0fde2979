"""`make bench`: the service against baselines measured in the same run."""
