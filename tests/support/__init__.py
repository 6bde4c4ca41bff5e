"""Helpers the tests share: OpenAI chat chunks and SSE frames built and read the same way
everywhere (the fake upstream, the facade tests and the translator unit tests)."""
