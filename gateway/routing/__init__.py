"""Model handles to providers: parsing, aliases, model lists and cached LLM configs."""
