"""Hanlin's engine: catalog, model store, hardware, llama.cpp runtime, chat, completion.

Everything both front ends (the desktop app and the language server) need, and
nothing else: this package imports neither Qt nor pygls (a test proves it).
Front ends import the submodules they need (`engine.catalog`, `engine.store`,
`engine.runtime`, ...); each submodule lists its public names in `__all__`.
"""
