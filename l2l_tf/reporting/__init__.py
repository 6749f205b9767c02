"""What a person reads: loss-curve figures, Markdown reports, update histories and image grids."""
