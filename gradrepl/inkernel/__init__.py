"""Runs inside the kernel process (ipykernel): launch, the probe (probe.py wiring namespace.py,
snapshot.py with described_cache.py, values.py and errors.py), the backward tracer (tracer.py, node_order.py, glances.py), the
graph and Jacobian views. Imports gradrepl.protocol and the standard library, never the
front end, Textual or jupyter_client; torch only through sys.modules."""
