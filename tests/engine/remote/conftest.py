"""The real `llama-server` fixtures for the remote-backend tests (tests/support/llama_server.py)."""

from tests.support.remote_servers import llama_server_bin, smol_server  # noqa: F401
