"""Runs in the front-end process: the commands without a UI (replay, graph)."""
