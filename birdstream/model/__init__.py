"""The classifier: Birder-compatible ViT Parallel, checkpoint loading, weights download, preprocessing."""
