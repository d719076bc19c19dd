"""One ComponentResource per role of the deployment; __main__.py wires them together."""
