"""Knowledge base: sources, ingestion, the BM25 and vector index, retrieval."""
