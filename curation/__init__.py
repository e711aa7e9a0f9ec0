"""worldforge curation: turn recorded episodes into WebDataset training shards."""
