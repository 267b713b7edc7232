"""Dataset loaders for the official on-disk formats, and the embedded smoke datasets."""
