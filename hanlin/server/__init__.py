"""`hanlin serve`: the OpenAI and Anthropic HTTP APIs on Hanlin's own engine.

A front end like the desktop app, the CLI and the language server: it imports the engine,
never the other way round. Modules, one job each:

- `config.py`    the server's settings (flags over `[server]` in settings.toml), safety checks
- `app.py`       the Starlette application: routes, middleware, error responses, /health
- `runner.py`    uvicorn, the address line, SIGTERM with streams open
- `auth.py`      API keys (Bearer / x-api-key, compared in constant time)
- `limits.py`    request body cap (413)
- `errors.py`    API errors in the OpenAI and Anthropic shapes
- `scheduler.py` parallel slots, the bounded queue, 503 + Retry-After
- `models.py`    which installed models are served, loading them, one batch decoder each
- `prompts.py`   chat turns → prompt tokens through the GGUF's own template (tools too)
- `generation.py` one generation on the batch decoder: stops, reasoning split, tool calls
- `tools.py`     tool specs, tool-call parsing (Qwen, Qwen3-Coder, GLM), call grammars
- `grammars.py`  GBNF for JSON mode and JSON schemas
- `sse.py`       server-sent events
- `openai_routes.py`, `anthropic_routes.py`  the two dialects
"""
