"""Knowledge base (C6): sources, extraction, chunking, indexing and retrieval."""
