"""Ready-made client configurations for a running server: OpenAI SDK, Continue, Claude Code.

Pure text (no imports of the server): the desktop's server panel copies these, and the
README shows the same ones. With an API key set, the snippets read it from the
environment variable the settings name instead of spelling the key out.
"""

from __future__ import annotations

__all__ = ["SNIPPET_TITLES", "snippets"]

SNIPPET_TITLES = {
    "openai": "OpenAI SDK (Python)",
    "continue": "Continue (config.yaml)",
    "claude": "Claude Code",
}


def snippets(base_url: str, model: str | None, *, key_env: str | None = None) -> dict[str, str]:
    """{"openai": ..., "continue": ..., "claude": ...} for a server at `base_url`."""
    model = model or "MODEL_ID"
    v1 = f"{base_url}/v1"
    py_key = f'os.environ["{key_env}"]' if key_env else '"hanlin"'
    py_import = "import os\n\n" if key_env else ""
    yaml_key = f"${{{{ secrets.{key_env} }}}}" if key_env else "hanlin"
    shell_key = f"${key_env}" if key_env else "hanlin"
    return {
        "openai": (
            f"{py_import}from openai import OpenAI\n\n"
            f'client = OpenAI(base_url="{v1}", api_key={py_key})\n'
            "reply = client.chat.completions.create(\n"
            f'    model="{model}",\n'
            '    messages=[{"role": "user", "content": "Hello!"}],\n'
            ")\n"
            "print(reply.choices[0].message.content)\n"
        ),
        "continue": (
            "models:\n"
            f"  - name: Hanlin {model}\n"
            "    provider: openai\n"
            f"    model: {model}\n"
            f"    apiBase: {v1}\n"
            f"    apiKey: {yaml_key}\n"
            "    roles: [chat, edit, apply]\n"
        ),
        "claude": (
            f"export ANTHROPIC_BASE_URL={base_url}\n"
            f"export ANTHROPIC_AUTH_TOKEN={shell_key}\n"
            f"export ANTHROPIC_MODEL={model}\n"
            f"export ANTHROPIC_SMALL_FAST_MODEL={model}\n"
            "claude\n"
        ),
    }
