"""Data: the JSONL row formats, tokenization with loss masks, and the built-in data packs."""
