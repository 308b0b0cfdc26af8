"""The Textual app: code input, transcript, tensor inspector, backward log."""
