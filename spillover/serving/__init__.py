"""Serving-side code that runs inside Triton and the clients that talk to it."""
