"""Open-loop load, traffic traces, drills with verdicts, and the reports they write."""
