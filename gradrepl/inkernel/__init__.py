"""Runs inside the kernel process (ipykernel): launch, the probe, the backward tracer, the
graph and Jacobian views. Imports gradrepl.protocol and the standard library, never the
front end, Textual or jupyter_client; torch only through sys.modules."""
