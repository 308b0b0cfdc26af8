"""Runs in the front-end process: the kernel client (start and stop the kernel process, an
async session over jupyter_client, typed events from its messages). Never imports torch
or kernel-side code."""
