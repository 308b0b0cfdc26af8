"""Runs in the front-end process: the Textual app (code input, transcript, tensor inspector,
backward log). Never imports torch or kernel-side code."""
