"""Helpers for the tests that are not tests themselves: recorded kernel sessions, the kernel guard."""
