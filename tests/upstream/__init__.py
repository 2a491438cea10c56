"""Runner for TF Serving's own integration suite against the test double."""
