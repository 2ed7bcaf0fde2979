"""encoder-train: train the exporter's own modules on labelled or plain text (build time, torch)."""
