"""The crawler's pure core: what a document is, what an answer says, what happens next.

Nothing here keeps state across calls, touches the network or a store, or imports a module
of the crawler outside this package (the import contract in ``pyproject.toml`` says so).
"""
