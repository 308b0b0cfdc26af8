"""The app's state kept apart from its widgets: the worksheet of cells, the input history,
the journal that keeps typed cells safe."""
