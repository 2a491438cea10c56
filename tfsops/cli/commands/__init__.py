"""One module per command; each registers itself on ``tfsops.cli.app.app``."""
