"""Pure text forms of the wire records, shared by replay, graph and the app: no Textual,
no torch, no kernel."""
